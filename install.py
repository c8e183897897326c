"""Run by ComfyUI-Manager after `pip install -r requirements.txt`: adds what a requirements file cannot say.

- OpenCV and ONNX Runtime only where none is installed, since every OpenCV wheel owns `cv2/` and both onnxruntime
  builds own `onnxruntime/`: a second copy breaks the first. The headless OpenCV and the CPU onnxruntime are the
  ones added; users with an NVIDIA GPU install onnxruntime-gpu themselves.
- rtmlib, scenedetect and resemblyzer without their dependencies: the first two declare opencv-python, the third
  an old `typing` backport (their real needs are in requirements.txt).
"""

import importlib.util
import subprocess
import sys
from importlib import metadata


def installed(*distributions: str) -> bool:
    for name in distributions:
        try:
            metadata.version(name)
            return True
        except metadata.PackageNotFoundError:
            continue
    return False


def pip(*args: str) -> None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])


def main() -> None:
    if importlib.util.find_spec("cv2") is None:
        pip("opencv-python-headless>=4.8,<6")
    if not installed("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"):
        pip("onnxruntime>=1.17,<2")
    pip("--no-deps", "rtmlib==0.0.16", "scenedetect>=0.6.4,<0.8", "resemblyzer==0.1.4")


if __name__ == "__main__":
    main()
