"""Image files as A1111 writes them: names, numbering, atomic writes, metadata bytes, grids, base64."""
import base64
import datetime as dt
import io
import struct
import threading
import zlib
from pathlib import Path

import piexif
import piexif.helper
import pytest
from PIL import Image

from modules.core import image_files as I

ASCII_INFO = "a photo of a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 64x48"
UNICODE_INFO = ("日本語のプロンプト, ünïcödé, emoji 🎨, \"quoted\"\nNegative prompt: 低品質\n"
                "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 64x48")


def make_image(color=(10, 200, 30), size=(64, 48), mode="RGB"):
    return Image.new(mode, size, color)


def png_chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        out.append((ctype, body))
        pos += 12 + length
    return out


def png_text(data: bytes) -> dict:
    """Decode tEXt/zTXt/iTXt chunks by hand (not through Pillow)."""
    res = {}
    for ctype, body in png_chunks(data):
        if ctype == b"tEXt":
            k, v = body.split(b"\0", 1)
            res[k.decode("latin-1")] = ("tEXt", v.decode("latin-1"))
        elif ctype == b"iTXt":
            k, rest = body.split(b"\0", 1)
            compressed, _method = rest[0], rest[1]
            _lang, rest = rest[2:].split(b"\0", 1)
            _translated, text = rest.split(b"\0", 1)
            if compressed:
                text = zlib.decompress(text)
            res[k.decode("latin-1")] = ("iTXt", text.decode("utf-8"))
        elif ctype == b"zTXt":
            k, rest = body.split(b"\0", 1)
            res[k.decode("latin-1")] = ("zTXt", zlib.decompress(rest[1:]).decode("latin-1"))
    return res


def no_temp_files(directory: Path):
    return [p.name for p in directory.iterdir() if p.name.startswith(".tmp-") or p.suffix in (".part", ".tmp")]


# ------------------------------------------------------------------------------------------------ save_image


def test_png_parameters_chunk_exact_bytes(tmp_path):
    path = I.save_image(make_image(), tmp_path, seed=123, infotext=ASCII_INFO)
    assert path == tmp_path / "00000-123.png"
    data = path.read_bytes()
    assert png_text(data) == {"parameters": ("tEXt", ASCII_INFO)}
    assert b"tEXtparameters\x00" + ASCII_INFO.encode("latin-1") in data
    with Image.open(path) as im:
        assert im.size == (64, 48) and im.getpixel((0, 0)) == (10, 200, 30)


def test_png_unicode_infotext_goes_to_itxt(tmp_path):
    path = I.save_image(make_image(), tmp_path, seed=1, infotext=UNICODE_INFO)
    assert png_text(path.read_bytes()) == {"parameters": ("iTXt", UNICODE_INFO)}
    with Image.open(path) as im:
        assert I.read_info_from_image(im) == (UNICODE_INFO, {})


def test_png_keeps_existing_text_items(tmp_path):
    im = make_image()
    im.info["sd-ti-embedding"] = "eyJ4IjogMX0="
    im.info["parameters"] = "old infotext"
    im.info["dpi"] = (72, 72)  # not text: not written as a chunk
    path = I.save_image(im, tmp_path, seed=5, infotext=ASCII_INFO)
    assert png_text(path.read_bytes()) == {"sd-ti-embedding": ("tEXt", "eyJ4IjogMX0="),
                                           "parameters": ("tEXt", ASCII_INFO)}
    path = I.save_image(im, tmp_path, seed=5)  # no infotext: the existing parameters item stays
    assert png_text(path.read_bytes())["parameters"] == ("tEXt", "old infotext")


@pytest.mark.parametrize("ext", ["jpg", "jpeg", "webp"])
def test_jpeg_webp_exif_user_comment_round_trip(tmp_path, ext):
    path = I.save_image(make_image(mode="RGBA", color=(1, 2, 3, 255)), tmp_path, seed=77, infotext=UNICODE_INFO,
                        extension=ext)
    assert path.name == f"00000-77.{ext}"
    with Image.open(path) as im:
        assert im.format == ("WEBP" if ext == "webp" else "JPEG")
        exif = piexif.load(im.info["exif"])
        raw = exif["Exif"][piexif.ExifIFD.UserComment]
        assert raw == piexif.helper.UserComment.dump(UNICODE_INFO, encoding="unicode")
        assert raw.startswith(b"UNICODE\x00")
        assert raw[8:] == UNICODE_INFO.encode("utf-16-be")
        geninfo, items = I.read_info_from_image(im)
    assert geninfo == UNICODE_INFO
    assert "exif" not in items and not any(isinstance(v, bytes) for v in items.values())


def test_jpeg_quality_and_no_infotext(tmp_path):
    noisy = Image.effect_noise((128, 128), 80).convert("RGB")
    low = I.save_image(noisy, tmp_path, seed=1, extension="jpg", jpeg_quality=20)
    high = I.save_image(noisy, tmp_path, seed=1, extension="jpg", jpeg_quality=95)
    assert low.stat().st_size < high.stat().st_size
    with Image.open(low) as im:
        assert I.read_info_from_image(im)[0] is None


def test_gif_comment(tmp_path):
    path = I.save_image(make_image(), tmp_path, seed=3, infotext=UNICODE_INFO, extension="gif")
    with Image.open(path) as im:
        geninfo, items = I.read_info_from_image(im)
    assert geninfo == UNICODE_INFO
    assert "comment" not in items


def test_sidecar_txt_only_when_asked(tmp_path):
    a = I.save_image(make_image(), tmp_path, seed=1, infotext=ASCII_INFO)
    assert not a.with_suffix(".txt").exists()
    b = I.save_image(make_image(), tmp_path, seed=2, infotext=UNICODE_INFO, save_txt=True)
    assert b.name == "00001-2.png"
    assert b.with_suffix(".txt").read_text(encoding="utf-8") == UNICODE_INFO + "\n"
    c = I.save_image(make_image(), tmp_path, seed=3, infotext=None, save_txt=True)
    assert not c.with_suffix(".txt").exists()
    assert no_temp_files(tmp_path) == []


def test_numbering_continues_after_existing_files(tmp_path):
    for name in ("00007-1.png", "00003-5.jpg", "00009.txt", "notes.txt", "abc-12.png", "grid-0042.png",
                 "12345x.png"):
        (tmp_path / name).write_bytes(b"x")
    path = I.save_image(make_image(), tmp_path, seed=4242)
    assert path.name == "00010-4242.png"
    assert I.save_image(make_image(), tmp_path, seed=4242).name == "00011-4242.png"
    assert I.next_sequence_number(tmp_path) == 12
    assert I.next_sequence_number(tmp_path / "missing") == 0


def test_numbering_in_empty_and_new_folder(tmp_path):
    target = tmp_path / "outputs" / "txt2img-images" / "2024-05-01"
    assert I.save_image(make_image(), target, seed=0).name == "00000-0.png"
    assert I.save_image(make_image(), target, seed=99999999999).name == "00001-99999999999.png"
    assert I.next_sequence_number(target) == 2


def test_numbers_past_99999_keep_counting(tmp_path):
    (tmp_path / "99999-1.png").write_bytes(b"x")
    assert I.save_image(make_image(), tmp_path, seed=2).name == "100000-2.png"


def test_basename_prefix_and_patterns(tmp_path):
    assert I.save_image(make_image(), tmp_path, seed=5, basename_prefix="grid").name == "grid-0000-5.png"
    assert I.save_image(make_image(), tmp_path, seed=5, basename_prefix="grid",
                        basename_pattern="").name == "grid-0001.png"
    assert I.save_image(make_image(), tmp_path, seed=5).name == "00000-5.png"  # the grid prefix does not count
    assert I.save_image(make_image(), tmp_path, seed=5, basename_pattern="").name == "00001.png"
    p = I.save_image(make_image(), tmp_path, seed=5, basename_pattern="[seed]-[STEPS]-[sampler]-[unknown]",
                     tags={"steps": 20, "Sampler": "Euler a"})
    assert p.name == "00002-5-20-Euler a-[unknown].png"
    p = I.save_image(make_image(), tmp_path, seed=5, basename_pattern="[prompt]",
                     tags={"prompt": 'a/b:c*"d"?\nnew'})
    assert p.name == "00003-a_b_c__d___new.png"
    p = I.save_image(make_image(), tmp_path, seed=5, basename_pattern="[prompt]", tags={"prompt": "x" * 300})
    assert p.name == "00004-" + "x" * 128 + ".png"


def test_existing_name_is_never_overwritten(tmp_path):
    I.save_image(make_image(), tmp_path, seed=1)
    (tmp_path / "00001-1.png").write_bytes(b"keep")
    p = I.save_image(make_image(), tmp_path, seed=1)
    assert p.name == "00002-1.png"
    assert (tmp_path / "00001-1.png").read_bytes() == b"keep"


def test_unsupported_extension(tmp_path):
    with pytest.raises(ValueError, match="Unsupported image extension"):
        I.save_image(make_image(), tmp_path, seed=1, extension="tga")
    assert list(tmp_path.iterdir()) == []


def test_no_temp_files_left_after_saves(tmp_path):
    for ext in ("png", "jpg", "webp", "gif"):
        I.save_image(make_image(), tmp_path, seed=1, infotext=ASCII_INFO, extension=ext, save_txt=True)
    assert no_temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        "00000-1.png", "00000-1.txt", "00001-1.jpg", "00001-1.txt", "00002-1.webp", "00002-1.txt",
        "00003-1.gif", "00003-1.txt"])


def test_failure_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    I.save_image(make_image(), tmp_path, seed=1)
    real_save = Image.Image.save

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        I.save_image(make_image(), tmp_path, seed=2, infotext=ASCII_INFO, save_txt=True)
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000-1.png"]


def test_failure_at_rename_leaves_nothing(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise PermissionError("no")

    monkeypatch.setattr(I.os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        I.save_image(make_image(), tmp_path, seed=2, infotext=ASCII_INFO, save_txt=True)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_encoder_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(I, "_encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        I.save_image(make_image(), tmp_path, seed=2)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_saves_get_distinct_numbers(tmp_path):
    results, errors = [], []

    def worker(i):
        try:
            results.append(I.save_image(make_image(color=(i, i, i)), tmp_path, seed=i, infotext=f"p\nSteps: {i}"))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    numbers = sorted(int(p.name.split("-")[0]) for p in results)
    assert numbers == list(range(12))
    assert no_temp_files(tmp_path) == []


def test_dated_output_dir(tmp_path):
    assert I.dated_output_dir(tmp_path, "txt2img-images", dt.date(2024, 5, 1)) == tmp_path / "txt2img-images" / "2024-05-01"
    assert I.dated_output_dir("outputs", "img2img-grids", dt.datetime(2023, 12, 31, 23, 59)) == Path(
        "outputs/img2img-grids/2023-12-31")
    assert I.dated_output_dir(tmp_path, "extras-images").name == dt.date.today().strftime("%Y-%m-%d")
    assert not (tmp_path / "txt2img-images").exists()


def test_write_params_txt_atomic(tmp_path, monkeypatch):
    target = tmp_path / "params.txt"
    I.write_params_txt(target, UNICODE_INFO)
    assert target.read_text(encoding="utf-8") == UNICODE_INFO

    def broken_replace(src, dst):
        raise OSError("boom")

    monkeypatch.setattr(I.os, "replace", broken_replace)
    with pytest.raises(OSError):
        I.write_params_txt(target, "new")
    assert target.read_text(encoding="utf-8") == UNICODE_INFO
    assert [p.name for p in tmp_path.iterdir()] == ["params.txt"]


# ------------------------------------------------------------------------------------------------ reading


def test_read_info_user_comment_variants():
    def jpeg_with_comment(raw):
        buf = io.BytesIO()
        make_image().save(buf, format="JPEG", exif=piexif.dump({"Exif": {piexif.ExifIFD.UserComment: raw}}))
        buf.seek(0)
        return Image.open(buf)

    assert I.read_info_from_image(jpeg_with_comment(b"UNICODE\x00" + UNICODE_INFO.encode("utf-16-le")))[0] == UNICODE_INFO
    assert I.read_info_from_image(jpeg_with_comment(b"UNICODE\x00\xff\xfe" + "x: 1".encode("utf-16-le")))[0] == "x: 1"
    assert I.read_info_from_image(jpeg_with_comment(b"ASCII\x00\x00\x00Steps: 20"))[0] == "Steps: 20"
    assert I.read_info_from_image(jpeg_with_comment(b"\x00" * 8 + "ü".encode()))[0] == "ü"
    assert I.decode_user_comment(b"UNICODE\x00" + "abc".encode("utf-16-be") + b"\x00\x00") == "abc"


def test_read_info_bad_exif_does_not_crash():
    im = make_image()
    im.info["exif"] = b"Exif\x00\x00garbage"
    im.info["parameters"] = "from png"
    assert I.read_info_from_image(im) == ("from png", {})


def test_read_info_novelai():
    im = make_image(size=(512, 768))
    im.info.update({
        "Software": "NovelAI", "Description": "1girl, solo",
        "Comment": '{"uc": "lowres, bad anatomy", "steps": 28, "scale": 11, "seed": 42, "sampler": "k_euler_ancestral"}',
    })
    geninfo, items = I.read_info_from_image(im)
    assert geninfo == ("1girl, solo\nNegative prompt: lowres, bad anatomy\nSteps: 28, Sampler: Euler a, CFG scale: 11, "
                       "Seed: 42, Size: 512x768, Clip skip: 2, ENSD: 31337")
    assert items["Software"] == "NovelAI"


def test_read_info_plain_image():
    assert I.read_info_from_image(make_image()) == (None, {})


# ------------------------------------------------------------------------------------------------ grid


@pytest.mark.parametrize("n, rows, cols", [(1, 1, 1), (2, 1, 2), (3, 2, 2), (4, 2, 2), (5, 2, 3), (6, 2, 3),
                                           (7, 3, 3), (8, 3, 3), (9, 3, 3), (10, 3, 4), (16, 4, 4)])
def test_grid_default_layout(n, rows, cols):
    grid = I.image_grid([make_image(size=(10, 20)) for _ in range(n)])
    assert grid.size == (cols * 10, rows * 20)
    assert grid.mode == "RGB"


def test_grid_pixels_order_background_and_centering():
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    grid = I.image_grid([make_image(c, (8, 8)) for c in colors])
    assert grid.size == (16, 16)
    assert grid.getpixel((4, 4)) == colors[0]
    assert grid.getpixel((12, 4)) == colors[1]
    assert grid.getpixel((4, 12)) == colors[2]
    assert grid.getpixel((12, 12)) == (255, 255, 255)  # the empty cell is white
    grid = I.image_grid([make_image((255, 0, 0), (8, 8)), make_image((0, 0, 255), (4, 4))], rows=1)
    assert grid.size == (16, 8)
    assert grid.getpixel((8 + 2, 2)) == (0, 0, 255)  # centred: offset (8-4)//2 = 2
    assert grid.getpixel((8 + 1, 1)) == (255, 255, 255)
    assert grid.getpixel((8 + 6, 6)) == (255, 255, 255)


def test_grid_explicit_rows_and_errors():
    imgs = [make_image(size=(4, 4)) for _ in range(6)]
    assert I.image_grid(imgs, rows=1).size == (24, 4)
    assert I.image_grid(imgs, rows=3).size == (8, 12)
    assert I.image_grid(imgs, rows=10).size == (4, 24)  # rows capped at n
    with pytest.raises(ValueError):
        I.image_grid([])


# ------------------------------------------------------------------------------------------------ base64


def test_base64_png_round_trip_keeps_parameters():
    im = make_image()
    im.info["parameters"] = ASCII_INFO
    s = I.encode_image_base64(im)
    assert not s.startswith("data:")
    assert png_text(base64.b64decode(s)) == {"parameters": ("tEXt", ASCII_INFO)}
    back = I.decode_base64_image(s)
    assert back.size == (64, 48) and back.info["parameters"] == ASCII_INFO
    s = I.encode_image_base64(make_image(), "png", infotext=UNICODE_INFO)
    assert I.read_info_from_image(I.decode_base64_image(s))[0] == UNICODE_INFO
    assert "parameters" not in png_text(base64.b64decode(I.encode_image_base64(make_image())))


@pytest.mark.parametrize("fmt, pil", [("jpeg", "JPEG"), ("jpg", "JPEG"), ("webp", "WEBP")])
def test_base64_jpeg_webp_exif(fmt, pil):
    im = make_image(mode="RGBA", color=(9, 9, 9, 128))
    im.info["parameters"] = UNICODE_INFO
    back = I.decode_base64_image(I.encode_image_base64(im, fmt))
    assert back.format == pil
    assert I.read_info_from_image(back)[0] == UNICODE_INFO


def test_base64_prefix_whitespace_padding():
    s = I.encode_image_base64(make_image())
    for variant in (f"data:image/png;base64,{s}", f"  data:image/jpeg;base64,{s}\n", s[:40] + "\n" + s[40:],
                    s.rstrip("="), s.encode("ascii")):
        assert I.decode_base64_image(variant).size == (64, 48)


@pytest.mark.parametrize("bad, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("data:image/png;base64,", "empty"),
    ("!!!not base64!!!", "bad base64"),
    ("data:text/plain,hello", "data URL"),
    (base64.b64encode(b"this is not an image").decode(), "not a recognised image format"),
    (b"\xff\xfe", "not base64 text"),
])
def test_base64_errors(bad, reason):
    with pytest.raises(ValueError, match=r"^Invalid encoded image: .*" + reason):
        I.decode_base64_image(bad)


def test_base64_truncated_image():
    buf = io.BytesIO()
    Image.effect_noise((256, 256), 50).convert("RGB").save(buf, format="PNG")
    data = buf.getvalue()
    with pytest.raises(ValueError, match="^Invalid encoded image: "):
        I.decode_base64_image(base64.b64encode(data[: len(data) // 2]).decode())
    buf = io.BytesIO()
    Image.effect_noise((256, 256), 50).convert("RGB").save(buf, format="JPEG")
    with pytest.raises(ValueError, match="^Invalid encoded image: "):
        I.decode_base64_image(base64.b64encode(buf.getvalue()[:2000]).decode())


def test_base64_decompression_bomb(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    s = I.encode_image_base64(make_image(size=(64, 64)))
    with pytest.raises(ValueError, match="^Invalid encoded image: too large"):
        I.decode_base64_image(s)


def test_base64_exif_orientation_applied():
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.putpixel((0, 0), (255, 255, 255))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    im.save(buf, format="PNG", exif=exif.tobytes())
    back = I.decode_base64_image(base64.b64encode(buf.getvalue()).decode())
    assert back.size == (20, 40)


def test_encode_unsupported_format():
    with pytest.raises(ValueError):
        I.encode_image_base64(make_image(), "bmp")
    with pytest.raises(ValueError):
        I.encode_image_base64(make_image(), "gif")
