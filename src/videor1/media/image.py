"""Reading images for the model: RGB, upright, resized with Qwen's smart_resize."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

from videor1.media.errors import BadGeometry, EmptyMedia, MediaNotFound, UnreadableImage
from videor1.media.sampling import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, geometry_problem, smart_resize


def _to_rgb(image: Image.Image) -> Image.Image:
    # Transparent pixels become white, as qwen-vl-utils does for RGBA (here for every mode with alpha).
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def read_image(path: str | Path, min_pixels: int = QWEN_MIN_PIXELS, max_pixels: int = QWEN_MAX_PIXELS,
               factor: int = 28) -> Image.Image:
    """The image at `path` as RGB, turned upright by its EXIF orientation (as transformers' loader does),
    resized (bicubic) to smart_resize(height, width, factor, min_pixels, max_pixels).

    Raises MediaNotFound, EmptyMedia, UnreadableImage (Pillow cannot open or fully decode it, e.g.
    truncated), or BadGeometry (aspect ratio above MAX_RATIO, or more pixels than
    PIL.Image.MAX_IMAGE_PIXELS: a decompression bomb).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaNotFound(path, "image file not found")
    if path.stat().st_size == 0:
        raise EmptyMedia(path, "image file is empty (0 bytes)")
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and width * height > limit:  # check before decoding the pixels
                raise BadGeometry(path, f"{width}x{height} image exceeds {limit} pixels "
                                        "(decompression bomb limit)")
            opened.load()  # decode now, so that truncated files fail here and not later in the processor
            image = _to_rgb(ImageOps.exif_transpose(opened))
    except Image.DecompressionBombError as error:
        raise BadGeometry(path, f"decompression bomb: {error}") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:  # UnidentifiedImageError is an OSError
        raise UnreadableImage(path, f"cannot decode image: {error}") from error
    problem = geometry_problem(image.height, image.width, max_side=None)
    if problem:
        raise BadGeometry(path, problem)
    height, width = smart_resize(image.height, image.width, factor, min_pixels, max_pixels)
    return image.resize((width, height), Image.Resampling.BICUBIC)
