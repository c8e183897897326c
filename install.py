"""Run by ComfyUI-Manager after `pip install -r requirements.txt`: adds what a requirements file cannot say.

OpenCV: only when no OpenCV is importable, and then the headless build, since every OpenCV wheel owns `cv2/` and a
second one breaks the first.
"""

import importlib.util
import subprocess
import sys


def main() -> None:
    if importlib.util.find_spec("cv2") is None:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "opencv-python-headless>=4.8,<6"])


if __name__ == "__main__":
    main()
