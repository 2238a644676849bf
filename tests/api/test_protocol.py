"""The wire format without a server: clips and images travel losslessly, and a request maps onto a
`Prompt` or is refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest
from api_support import PIXELS, api_media
from PIL import Image

from videor1.api.content import MediaPolicy, confined_path, load_part, request_prompt
from videor1.api.protocol import APIError, ChatRequest, ImagePart, VideoPart
from videor1.media.image import read_image
from videor1.media.sampling import FrameSampling
from videor1.media.video import Clip, VideoInfo, read_video
from videor1.models.inputs import Prompt
from videor1.rollout.endpoint import encode_mp4, image_data_url, prompt_messages, video_data_url


def noise_clip(frames: int = 8, height: int = 56, width: int = 84, fps: float = 8 / 247 * 29.97) -> Clip:
    pixels = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    info = VideoInfo(path=None, width=width, height=height, fps=29.97, total_frames=247, duration=247 / 29.97)
    return Clip(frames=pixels, timestamps=[], sampled_fps=fps, indices=list(range(frames)), info=info)


def test_a_clip_comes_back_bit_exact_at_its_fps(tmp_path, media_dir):
    real = read_video(media_dir / "videos" / "clip.mp4", api_media().sampling())  # 64x64 upsized to 84x84
    for clip in (noise_clip(), real):  # noise: nothing for a lossy codec to hide in
        path = tmp_path / "clip.mp4"
        path.write_bytes(encode_mp4(clip.frames, clip.sampled_fps))
        height, width = clip.frames.shape[1:3]
        back = read_video(path, FrameSampling(nframes=len(clip.frames), min_pixels=height * width,
                                              max_pixels=height * width))
        assert back.frames.shape == clip.frames.shape
        assert np.array_equal(back.frames, clip.frames)
        assert back.sampled_fps == pytest.approx(clip.sampled_fps, rel=1e-12)


def test_data_urls_decode_on_the_server_to_the_same_pixels(media_dir):
    policy = MediaPolicy.create([], api_media())
    clip = read_video(media_dir / "videos" / "clip.mp4", api_media().sampling())
    served = load_part(VideoPart(type="video_url", video_url={"url": video_data_url(clip)}), "part", policy)
    assert np.array_equal(served.frames,
                          clip.frames) and served.sampled_fps == pytest.approx(clip.sampled_fps)
    image = read_image(media_dir / "images" / "circles.png", 4 * 784, PIXELS)
    served = load_part(ImagePart(type="image_url", image_url={"url": image_data_url(image)}), "part", policy)
    assert served.size == image.size and np.array_equal(np.asarray(served), np.asarray(image))


def test_prompt_messages_keep_the_prompt_builders_order():
    image = Image.new("RGB", (56, 56), (10, 20, 30))
    [system, user] = prompt_messages(Prompt("How many?", image=image, system="Be brief."))
    assert system == {"role": "system", "content": "Be brief."}
    assert [part["type"] for part in user["content"]] == ["image_url", "text"]
    assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    [user] = prompt_messages(Prompt("Which way?", video=noise_clip()))
    assert [part["type"] for part in user["content"]] == ["video_url", "text"]


def request(*messages, **extra) -> ChatRequest:
    return ChatRequest.model_validate({"model": "m", "messages": list(messages), **extra})


def refused(req: ChatRequest, status: int, *words: str) -> APIError:
    with pytest.raises(APIError) as caught:
        request_prompt(req, MediaPolicy.create([], api_media()))
    assert caught.value.status == status, caught.value.message
    for word in words:
        assert word in caught.value.message
    return caught.value


def test_a_system_message_and_one_user_turn_map_onto_a_prompt():
    policy = MediaPolicy.create([], api_media())
    prompt = request_prompt(request({"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                                    {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                 {"type": "text", "text": "b"}]}), policy)
    assert (prompt.system, prompt.text, prompt.image, prompt.video) == ("Be brief.", "ab", None, None)
    assert request_prompt(request({"role": "user", "content": "hi"}), policy).system is None


def test_what_a_prompt_cannot_hold_is_refused_not_dropped():
    url = {"url": "data:image/png;base64,AAAA"}
    refused(request({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"}), 400, "multi-turn")
    refused(request({"role": "user", "content": "a"}, {"role": "system", "content": "b"}), 400, "system")
    refused(request({"role": "system", "content": "a"}), 400, "exactly one user message")
    refused(request({"role": "user", "content": [{"type": "image_url", "image_url": url},
                                                 {"type": "image_url", "image_url": url}]}), 400,
                                                 "at most one")
    refused(request({"role": "user", "content": [{"type": "text", "text": "look:"},
                                                 {"type": "image_url", "image_url": url}]}), 400,
                                                 "before the text")
    refused(request({"role": "system", "content": [{"type": "image_url", "image_url": url}]},
                    {"role": "user", "content": "a"}), 400, "only hold text")


def test_unsupported_options_are_schema_errors():
    for extra in ({"n": 2}, {"stream": True}, {"top_logprobs": 2}, {"presence_penalty": 0.5},
                  {"best_of": 2}, {"top_k": 0}):
        with pytest.raises(ValueError):
            request({"role": "user", "content": "a"}, **extra)
    assert request({"role": "user", "content": "a"}, n=1, stream=False, top_k=-1).top_k is None


def test_local_paths_are_confined_to_the_media_roots(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside.png"
    root.mkdir()
    Image.new("RGB", (56, 56)).save(outside)
    (root / "ok.png").write_bytes(outside.read_bytes())
    (root / "link.png").symlink_to(outside)
    roots = MediaPolicy.create([root], api_media()).roots
    assert confined_path(str(root / "ok.png"), "p", roots) == (root / "ok.png").resolve()
    assert confined_path(f"file://{root / 'ok.png'}", "p", roots) == (root / "ok.png").resolve()
    for url in (f"{root}/../outside.png", f"file://{root}/../outside.png", str(root / "link.png"),
                f"file://{root}/%2E%2E/outside.png"):
        with pytest.raises(APIError) as caught:
            confined_path(url, "p", roots)
        assert caught.value.status == 403, url
    with pytest.raises(APIError) as caught:
        confined_path(str(root / "ok.png"), "p", ())
    assert caught.value.status == 403 and "--media-root" in caught.value.message
    with pytest.raises(APIError) as caught:
        confined_path("ok.png", "p", roots)
    assert caught.value.status == 400 and "absolute" in caught.value.message


def test_a_nul_in_a_local_path_is_a_400_not_an_escaping_error(tmp_path):
    # os.path.realpath raises ValueError on a NUL: it escaped as a plain-text 500, which clients retry
    roots = MediaPolicy.create([tmp_path], api_media()).roots
    for url in (f"{tmp_path}/a\x00.png", f"file://{tmp_path}/a%00.png"):
        with pytest.raises(APIError) as caught:
            confined_path(url, "p", roots)
        assert caught.value.status == 400 and "NUL" in caught.value.message, url
