"""The few ComfyUI services the nodes use, imported lazily so that the nodes also run outside ComfyUI (tests)."""

from __future__ import annotations

import os

import numpy as np
import torch

from mit_annotator.core.models import ACTIVE_SPEAKER_FOLDER, COMFY_FOLDER, KNOWN_MODELS, SEGMENTATION_FOLDER
from mit_annotator.core.progress import Progress
from mit_annotator.core.records import SAMPLE_RATE  # not core.media: these nodes load without PyAV


def progress_callback(total: int) -> Progress:
    """The nodes' progress hook (mit_annotator.core.progress): it drives ComfyUI's progress bar and raises ComfyUI's
    own interrupt once the user pressed Cancel, so ComfyUI reports an interruption, not an error."""
    try:
        import comfy.model_management as model_management
        import comfy.utils
    except ImportError:
        return lambda done, total: None
    bar = comfy.utils.ProgressBar(total)

    def update(done: int, _total: int) -> None:
        model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total)

    return update


def frames_to_image(frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> ComfyUI IMAGE: (F, H, W, 3) float32 in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32).div_(255.0)


def audio_to_comfy(samples: np.ndarray, sample_rate: int) -> dict:
    """(T,) or (C, T) float samples -> ComfyUI AUDIO: {"waveform": (1, C, T), "sample_rate"}."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None]
    return {"waveform": torch.from_numpy(samples.copy())[None], "sample_rate": int(sample_rate)}


def audio_parts(audio: dict) -> tuple[torch.Tensor, int]:
    """ComfyUI AUDIO ({"waveform": (B, C, T), "sample_rate"}) -> (waveform, sample rate), or an error naming it."""
    try:
        return audio["waveform"], int(audio["sample_rate"])
    except (KeyError, TypeError):
        raise ValueError("audio must be ComfyUI AUDIO: {'waveform': (batch, channels, samples), 'sample_rate'}") \
            from None


def audio_to_mono_16k(audio: dict) -> np.ndarray:
    """ComfyUI AUDIO ({"waveform": (B, C, T), "sample_rate"}) -> mono float32 at 16 kHz."""
    waveform, rate = audio_parts(audio)
    samples = waveform[0].float().mean(dim=0).cpu().numpy()
    if samples.size == 0:
        raise ValueError("the audio has no samples")
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        divisor = np.gcd(rate, SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // divisor, rate // divisor)
    return samples.astype(np.float32)


def image_to_frames(images: torch.Tensor):
    """ComfyUI IMAGE (F, H, W, 3) float 0..1 -> RGB uint8 frames, one at a time (no second copy of the video)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be a batch of RGB frames (F, H, W, 3), got shape {tuple(images.shape)}")
    for frame in images:
        yield image_to_rgb(frame)


def image_to_rgb(image: torch.Tensor) -> np.ndarray:
    """One (H, W, 3) frame of a ComfyUI IMAGE, float 0..1 -> RGB uint8."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def comfy_models_dir(folder: str = COMFY_FOLDER) -> str | None:
    """ComfyUI's models/<folder> (default dwpose: the detectors, pose and face models); None outside ComfyUI."""
    try:
        import folder_paths

        return folder_paths.get_folder_paths(folder)[0]
    except (ImportError, AttributeError, KeyError, IndexError):
        return None


def active_speaker_choices() -> list[str]:
    """LR-ASD weight files for a combo: the two released ones first, then others in models/active_speaker."""
    known = [KNOWN_MODELS["lr_asd"].filename, KNOWN_MODELS["lr_asd_talkset"].filename]
    return known + sorted(f for f in model_folder_files(ACTIVE_SPEAKER_FOLDER) if f not in known)


def segmentation_choices() -> list[str]:
    """Speaker segmentation files for a combo: the released one first, then others in models/speaker_segmentation
    (its conversion, which stands for the same model, is not listed twice)."""
    known = KNOWN_MODELS["pyannote_segmentation"]
    return [known.filename] + sorted(f for f in model_folder_files(SEGMENTATION_FOLDER)
                                     if f not in (known.filename, known.converted) and not f.endswith(".json"))


def model_folder_files(folder: str) -> list[str]:
    """Files in a ComfyUI model folder (registered under models/<folder> if ComfyUI does not know it yet)."""
    folder_paths = _registered(folder)
    return list(folder_paths.get_filename_list(folder)) if folder_paths else []


def model_folders(folder: str, marker: str) -> list[str]:
    """Names of the subfolders (of every path ComfyUI maps to models/<folder>) that hold `marker`: models that are
    a folder of files rather than one file."""
    found = set()
    for root in _folder_paths(folder):
        if os.path.isdir(root):
            found.update(name for name in os.listdir(root) if os.path.isfile(os.path.join(root, name, marker)))
    return sorted(found)


def resolve_model_folder(folder: str, name: str) -> str:
    """The full path of model folder `name` under models/<folder>: a name there, never a path out of it (outside
    ComfyUI, an existing folder's path is taken as given, see below)."""
    if _registered(folder) is None and os.path.isabs(name) and os.path.isdir(name):
        return name
    for root in map(os.path.abspath, _folder_paths(folder)):
        path = os.path.abspath(os.path.join(root, name))
        if path != root and _inside(path, root) and os.path.isdir(path):
            return path
    raise FileNotFoundError(f"model folder {name!r} not found under models/{folder} (a folder's name there, not a "
                            "path)")


# Inside ComfyUI a node's inputs come from whoever can reach the server: a file they name must be in ComfyUI's folders.
# Called from Python without ComfyUI (no folder_paths), the caller has the machine already and paths are taken as
# given, as the library takes them.

def resolve_model_name(choice: str, folder: str, what: str, also: tuple[str, ...] = ()) -> str:
    """A model named in a node's input: a known model's name or file name (searched where known models are), a file
    in ComfyUI's models/<folder> (its full path), or one of `also` (such as 'none'); never a path elsewhere."""
    if choice in also:
        return choice
    for name, known in KNOWN_MODELS.items():
        if choice in (name, known.filename):
            return name
    folder_paths = _registered(folder)
    if folder_paths is None:
        return choice
    if choice in model_folder_files(folder):
        return folder_paths.get_full_path(folder, choice)
    raise ValueError(f"{what} {choice!r} is neither a known model ({', '.join(sorted(KNOWN_MODELS))}) nor a file in "
                     f"ComfyUI/models/{folder}: put the file there and pick it by name")


def confined_path(text: str, what: str) -> str:
    """A file or folder named in a node's text input; inside ComfyUI its real path (links and `..` resolved) must lie
    in ComfyUI's input or output folder (a relative path is taken from the input folder)."""
    raw = os.path.expanduser(text.strip())
    roots = input_output_folders()
    if roots is None:
        return os.path.abspath(raw)
    path = os.path.realpath(raw if os.path.isabs(raw) else os.path.join(roots[0], raw))
    if not any(_inside(path, root) for root in roots):
        raise ValueError(f"{what} {text.strip()!r} is outside ComfyUI's input and output folders ({', '.join(roots)}): "
                         "put it there, or use the command line (python -m mit_annotator) for files elsewhere")
    return path


def input_output_folders() -> list[str] | None:
    """ComfyUI's input and output folders; None outside ComfyUI."""
    try:
        import folder_paths

        return [os.path.realpath(folder_paths.get_input_directory()),
                os.path.realpath(folder_paths.get_output_directory())]
    except (ImportError, AttributeError):
        return None


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath((path, root)) == root
    except ValueError:  # another drive (Windows)
        return False


def _folder_paths(folder: str) -> list[str]:
    folder_paths = _registered(folder)
    return list(folder_paths.get_folder_paths(folder)) if folder_paths else []


def _registered(folder: str):
    """ComfyUI's folder_paths with models/<folder> registered, or None outside ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return None
    try:
        if folder not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(folder, os.path.join(folder_paths.models_dir, folder))
        folder_paths.get_folder_paths  # noqa: B018  (a stand-in without ComfyUI's functions has none)
    except AttributeError:
        return None
    return folder_paths


def torch_devices() -> tuple[torch.device, torch.device]:
    """(the device to compute on, the device to keep models on between runs), as ComfyUI chooses them."""
    try:
        import comfy.model_management as model_management
    except ImportError:
        compute = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return compute, torch.device("cpu")
    return model_management.get_torch_device(), model_management.unet_offload_device()


def free_memory() -> None:
    try:
        import comfy.model_management as model_management
    except ImportError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return
    model_management.soft_empty_cache()


AUDIO_SLACK_FRAMES = 2  # a decoded audio track may end this many frames before the video and still cover it


def check_audio_covers(seconds: float, num_frames: int, fps: float) -> None:
    """A clear error when the audio ends before the video does (more than a couple of frames early)."""
    video = num_frames / fps
    if seconds < video - AUDIO_SLACK_FRAMES / fps:
        raise ValueError(f"the audio lasts {seconds:.2f} s but the video {video:.2f} s ({num_frames} frames at "
                         f"{fps:g} fps): give the video's own audio, or cut the frames to the audio")


def check_people(tracks) -> None:
    """A clear error for tracks with nobody in them."""
    if not tracks.tracks:
        raise ValueError(f"no people in the tracks ({tracks.num_frames} frames of {tracks.width}x{tracks.height}): "
                         "nobody was found, so there is no one to annotate or animate. Check the detector's "
                         "threshold and that people are in view")


def check_images(images, tracks) -> None:
    """Images used with tracks must be the frames the tracks were made from: their count and size."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be a batch of RGB frames (F, H, W, 3), got shape {tuple(images.shape)}")
    if images.shape[0] != tracks.num_frames or (images.shape[2], images.shape[1]) != (tracks.width, tracks.height):
        raise ValueError(f"the tracks were made for {tracks.num_frames} frames of {tracks.width}x{tracks.height}, "
                         f"the images are {images.shape[0]} frames of {images.shape[2]}x{images.shape[1]}: give "
                         "the frames the tracks came from")


def make_room(modules, device: torch.device) -> None:
    """Ask ComfyUI to offload its own models until `modules` fit on `device` (a no-op outside ComfyUI or on the
    CPU); models ComfyUI manages give way, as they do for one of its own."""
    if device.type == "cpu":
        return
    try:
        import comfy.model_management as model_management
    except ImportError:
        return
    size = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
    model_management.free_memory(int(size * 1.2) + (512 << 20), device)
