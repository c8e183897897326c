"""Model files: the ones the annotator knows, and where a file is looked for.

Resolution order for a model: an explicit path; ComfyUI's model folder for it (when running inside ComfyUI:
`models/dwpose` for the pose models and detectors, `models/active_speaker` for LR-ASD); a models directory (argument, else $MIT_MODELS_DIR, else ~/.cache/mit_annotator/models); then, only when asked, a download
with huggingface-hub into that directory. Offline or without permission to download, a missing file fails at once
with its name and where to get it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR_ENV = "MIT_MODELS_DIR"
COMFY_FOLDER = "dwpose"  # ComfyUI/models/dwpose/: where ComfyUI users keep DWPose's files
ACTIVE_SPEAKER_FOLDER = "active_speaker"  # ComfyUI/models/active_speaker/: LR-ASD's weights
SEGMENTATION_FOLDER = "speaker_segmentation"  # ComfyUI/models/speaker_segmentation/: pyannote's segmentation model


class ModelNotFoundError(FileNotFoundError):
    """A model file is not on this machine (and was not, or could not be, downloaded)."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    filename: str
    repo_id: str | None  # Hugging Face repository holding `filename`
    url: str
    licence: str
    sha256: str | None = None  # checked after a download and when verifying; None: not pinned
    input_size: tuple[int, int] | None = None  # (width, height) for models with a fixed input
    colour_order: str = "RGB"  # channel order the network was trained on
    comfy_folder: str = COMFY_FOLDER  # the folder under ComfyUI/models/ it is looked for in
    # LR-ASD: the visual encoder's largest activations on real faces, for int8 (scripts/calibrate_lr_asd_int8.py)
    int8_maxima: tuple[float, ...] | None = None
    subfolder: str | None = None  # the folder it ships in, also looked for inside each models folder
    converted: str | None = None  # a pickled release is converted once to this safetensors file, loaded afterwards


KNOWN_MODELS = {m.name: m for m in (
    KnownModel("yolox_l", "yolox_l.onnx", "yzd-v/DWPose", "https://huggingface.co/yzd-v/DWPose", "Apache-2.0",
               input_size=(640, 640), colour_order="BGR"),
    KnownModel("dwpose", "dw-ll_ucoco_384.onnx", "yzd-v/DWPose", "https://huggingface.co/yzd-v/DWPose",
               "Apache-2.0", input_size=(288, 384), colour_order="RGB"),
    KnownModel("yolox_nano", "yolox_nano.onnx", None,
               "https://github.com/Megvii-BaseDetection/YOLOX (official weights, exported to ONNX)", "Apache-2.0",
               sha256="c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d",
               input_size=(416, 416), colour_order="BGR"),
    KnownModel("scrfd", "det_10g.onnx", None,
               "https://github.com/deepinsight/insightface/tree/master/python-package (buffalo_l pack)",
               "non-commercial research only (insightface's pretrained models)"),
    KnownModel("arcface", "w600k_r50.onnx", None,
               "https://github.com/deepinsight/insightface/tree/master/python-package (buffalo_l pack)",
               "non-commercial research only (insightface's pretrained models)"),
    KnownModel("yunet", "face_detection_yunet.onnx", None,
               "https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet", "MIT",
               sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"),
    # LR-ASD (Liao et al., IJCV 2025): the AVA-trained weights (AVA-ActiveSpeaker mAP 94.45) are the default: on
    # real footage whose listeners move their lips they tell the speaker better than the TalkSet fine-tuned ones
    # (Columbia F1 96.4), which score a lip-moving listener as high as the speaker (BENCHMARKS.md).
    KnownModel("lr_asd", "pretrain_AVA.model", None,
               "https://github.com/Junhua-Liao/LR-ASD/tree/main/weight", "MIT",
               sha256="85e6c77fc981595234790d1e128ebb60352d37726b2445e0ef8891e2512fe9e3",
               comfy_folder=ACTIVE_SPEAKER_FOLDER, subfolder="lr_asd",
               int8_maxima=(9.272, 11.85, 15.69, 15.76, 16.21, 13.27, 12.93, 22.06, 8.17, 10.73, 10.45, 6.304)),
    KnownModel("lr_asd_talkset", "finetuning_TalkSet.model", None,
               "https://github.com/Junhua-Liao/LR-ASD/tree/main/weight", "MIT",
               sha256="6b4ef53694e874e96cf630198dc479c78aebb3993bbf166aee3d926dfe7d9342",
               comfy_folder=ACTIVE_SPEAKER_FOLDER, subfolder="lr_asd",
               int8_maxima=(9.6, 11.66, 13.08, 11.98, 8.093, 10.71, 8.553, 9.877, 6.221, 8.899, 7.235, 9.586)),
    # pyannote's speaker segmentation (Bredin and Laurent 2021; the 2022.07 release): a Lightning pickle, converted
    # once without running its classes (speaker_segmentation.py). WhisperX's public copy needs no account.
    KnownModel("pyannote_segmentation", "pytorch_model.bin", None,
               "https://whisperx.s3.eu-west-2.amazonaws.com/model_weights/segmentation/"
               "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea/pytorch_model.bin "
               "(or huggingface.co/pyannote/segmentation, gated)", "MIT",
               sha256="0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea",
               comfy_folder=SEGMENTATION_FOLDER, subfolder="pyannote_segmentation",
               converted="pyannote_segmentation.safetensors"),
)}


def default_models_dir() -> Path:
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV])
    return Path.home() / ".cache" / "mit_annotator" / "models"


def resolve_model(name_or_path: str | os.PathLike, models_dir: str | os.PathLike | None = None,
                  download: bool = False) -> Path:
    """The local path of a model given as a path or as a known name (see KNOWN_MODELS)."""
    candidate = Path(name_or_path)
    if candidate.suffix and (candidate.is_file() or candidate.parent != Path(".")):
        if candidate.is_file():
            return candidate
        raise ModelNotFoundError(f"model file {candidate} does not exist")
    known = KNOWN_MODELS.get(str(name_or_path))
    if known is None:
        if candidate.suffix:  # a bare file name: look for it where known models are looked for
            for folder in _search_folders(models_dir, *{m.comfy_folder for m in KNOWN_MODELS.values()}):
                if (folder / candidate).is_file():
                    return folder / candidate
        names = ", ".join(sorted(KNOWN_MODELS))
        raise ModelNotFoundError(f"{name_or_path!r} is neither an existing file nor a known model ({names}), and "
                                 f"no such file is in {', '.join(str(f) for f in _search_folders(models_dir))}")
    folders = _search_folders(models_dir, known.comfy_folder)
    for path in _candidates(known, known.filename, folders):
        if path.is_file():
            return path
    target = Path(models_dir) if models_dir else default_models_dir()
    if download and known.repo_id:
        return _download(known, target)
    where = f"download it from {known.url}" + (f" (file {known.filename})" if known.repo_id else "")
    how = (" or allow downloading (the node's download_missing, --download on the command line)"
           if known.repo_id else "")
    raise ModelNotFoundError(f"model {known.name} ({known.filename}) not found in "
                             f"{', '.join(str(f) for f in folders)}: {where} into {target}{how}")


def find_converted(known: KnownModel, models_dir: str | os.PathLike | None = None) -> Path | None:
    """The converted file of a known pickled release, where it was left by an earlier conversion (or put by hand)."""
    if not known.converted:
        return None
    folders = _search_folders(models_dir, known.comfy_folder) + [default_models_dir() / "converted"]
    return next((p for p in _candidates(known, known.converted, folders) if p.is_file()), None)


def _candidates(known: KnownModel, filename: str, folders: list[Path]) -> list[Path]:
    """`filename` in each folder, then in the subfolder the model ships in."""
    return [path for folder in folders
            for path in (folder / filename, *([folder / known.subfolder / filename] if known.subfolder else []))]


def _search_folders(models_dir: str | os.PathLike | None, *comfy_folders: str) -> list[Path]:
    folders = [path for name in (comfy_folders or (COMFY_FOLDER,)) for path in _comfy_folders(name)]
    folders.append(Path(models_dir) if models_dir else default_models_dir())
    return list(dict.fromkeys(folders))  # each once, in order


def _comfy_folders(name: str) -> list[Path]:
    try:
        import folder_paths  # only inside ComfyUI
    except ImportError:
        return []
    try:
        return [Path(p) for p in folder_paths.get_folder_paths(name)]
    except (KeyError, AttributeError):
        return []


def _download(known: KnownModel, target: Path) -> Path:
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True", "YES", "yes"):
        raise ModelNotFoundError(f"model {known.name} ({known.filename}) is not downloaded and HF_HUB_OFFLINE is "
                                 f"set: get it from {known.url} into {target}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelNotFoundError(f"downloading {known.filename} needs huggingface-hub (pip install "
                                 f"huggingface-hub), or get it from {known.url} into {target}") from None
    target.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(hf_hub_download(known.repo_id, known.filename, local_dir=target))
    except Exception as error:  # the hub's errors are many; all mean the same to the user
        raise ModelNotFoundError(f"could not download {known.filename} from {known.url} ({error}); "
                                 f"get it by hand into {target}") from None
    if known.sha256 and sha256_of(path) != known.sha256:
        path.unlink()
        raise ModelNotFoundError(f"{known.filename} downloaded from {known.url} has the wrong sha256; removed")
    return path


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
