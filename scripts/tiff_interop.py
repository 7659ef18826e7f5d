#!/usr/bin/env python3
"""tiff_interop.py: cross-checks isonet's TIFF reader and writer against Python's tifffile.

Called by tests/test_tiff.cpp; not needed by the product.

  tiff_interop.py read  FILE.tif OUT_PREFIX
      tifffile reads FILE.tif (written by isonet) and writes OUT_PREFIX.json (shape, dtype,
      is_imagej, axes, ImageJ metadata, X/Y resolution as rationals, contiguity) and
      OUT_PREFIX.raw (the pixel values as float32, ZYX, little-endian).

  tiff_interop.py write DIR
      tifffile writes test files into DIR (ImageJ with resolution and spacing, LZMA, Deflate,
      tiled, BigTIFF, big-endian, int16, float64, predictor) and, for every NAME.tif, NAME.raw
      (expected float32 values) and NAME.json (expected voxel size and flags); plus files that
      must be refused: RGB, palette, ImageJ channels and frames, pages of differing size.

Exit status 3 when numpy or tifffile is missing (the test then skips), 0 on success.
"""
import json
import os
import sys

try:
    import numpy as np
    import tifffile
except ImportError as e:  # pragma: no cover
    print(f"tiff_interop: {e}")
    sys.exit(3)


def to_jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, bytes):
        return x.decode("latin-1")
    return x


def cmd_read(path, prefix):
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        data = series.asarray()
        page = tf.pages[0]
        tags = page.tags
        info = {
            "shape": list(data.shape),
            "dtype": str(data.dtype),
            "pages": len(tf.pages),
            "is_imagej": bool(tf.is_imagej),
            "is_bigtiff": bool(tf.is_bigtiff),
            "axes": series.axes,
            "imagej": to_jsonable(tf.imagej_metadata or {}),
            "xres": list(tags["XResolution"].value) if "XResolution" in tags else None,
            "yres": list(tags["YResolution"].value) if "YResolution" in tags else None,
            "resunit": int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else None,
            # ImageJ reads all planes from the first strip offset: tifffile's series.dataoffset
            # is that offset when the whole series is one contiguous block, else None.
            "dataoffset": None if series.dataoffset is None else int(series.dataoffset),
            "first_strip": int(page.dataoffsets[0]),
            "data_bytes": int(data.nbytes),
        }
    with open(prefix + ".json", "w") as f:
        json.dump(info, f, indent=1)
    np.ascontiguousarray(data, dtype="<f4").tofile(prefix + ".raw")


def save_expected(d, name, data, voxel=None, has_z=False, has_xy=False, unit="px"):
    """Expected values and metadata for a file tifffile wrote (data: ZYX or YX)."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    np.ascontiguousarray(arr, dtype="<f4").tofile(os.path.join(d, name + ".raw"))
    z, y, x = voxel if voxel else (1.0, 1.0, 1.0)
    meta = {"shape": list(arr.shape), "z": z, "y": y, "x": x, "unit": unit,
            "has_z": has_z, "has_xy": has_xy}
    with open(os.path.join(d, name + ".json"), "w") as f:
        json.dump(meta, f)


def cmd_write(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1234)
    p = lambda name: os.path.join(d, name + ".tif")
    written = []

    # ImageJ hyperstack with calibration (uint16 and float32), as Fiji users save them.
    u16 = rng.integers(0, 65535, size=(7, 33, 41), dtype=np.uint16)
    tifffile.imwrite(p("ij_u16"), u16, imagej=True, resolution=(1 / 0.125, 1 / 0.125),
                     metadata={"spacing": 0.75, "unit": "um", "axes": "ZYX"})
    save_expected(d, "ij_u16", u16, (0.75, 0.125, 0.125), True, True, "um")
    written.append("ij_u16")

    f32 = rng.normal(size=(5, 19, 23)).astype(np.float32)
    tifffile.imwrite(p("ij_f32_micron"), f32, imagej=True, resolution=(1 / 0.2, 1 / 0.25),
                     metadata={"spacing": 2.5, "unit": "micron", "axes": "ZYX"})
    save_expected(d, "ij_f32_micron", f32, (2.5, 0.25, 0.2), True, True, "um")
    written.append("ij_f32_micron")

    # Compressed (LZW with predictor, Deflate), tiled, BigTIFF, big-endian; no calibration.
    u8 = rng.integers(0, 255, size=(6, 37, 29), dtype=np.uint8)
    # (LZW and PackBits need the imagecodecs package for writing: the C++ test writes those
    # with libtiff.)
    tifffile.imwrite(p("lzma_u8"), u8, compression="lzma")
    save_expected(d, "lzma_u8", u8)
    written.append("lzma_u8")

    tifffile.imwrite(p("deflate_f32"), f32, compression="zlib")
    save_expected(d, "deflate_f32", f32)
    written.append("deflate_f32")

    tiled = rng.integers(0, 4000, size=(4, 50, 70), dtype=np.uint16)  # not multiples of the tile
    tifffile.imwrite(p("tiled_deflate_u16"), tiled, tile=(16, 32), compression="zlib", predictor=True,
                     photometric="minisblack")
    save_expected(d, "tiled_deflate_u16", tiled)
    written.append("tiled_deflate_u16")

    tifffile.imwrite(p("bigtiff_f32"), f32, bigtiff=True)
    save_expected(d, "bigtiff_f32", f32)
    written.append("bigtiff_f32")

    tifffile.imwrite(p("bigendian_u16"), tiled, byteorder=">", photometric="minisblack")
    save_expected(d, "bigendian_u16", tiled)
    written.append("bigendian_u16")

    i16 = rng.integers(-30000, 30000, size=(3, 11, 13), dtype=np.int16)
    tifffile.imwrite(p("i16"), i16, photometric="minisblack")
    save_expected(d, "i16", i16)
    written.append("i16")

    f64 = rng.normal(size=(2, 9, 10))
    tifffile.imwrite(p("f64"), f64)
    save_expected(d, "f64", f64.astype(np.float32))
    written.append("f64")

    img2d = rng.integers(0, 255, size=(21, 17), dtype=np.uint8)
    tifffile.imwrite(p("plain_2d"), img2d)
    save_expected(d, "plain_2d", img2d)
    written.append("plain_2d")

    # Files that must be refused, with what the message must mention.
    refuse = {}
    tifffile.imwrite(p("bad_rgb"), rng.integers(0, 255, size=(8, 9, 3), dtype=np.uint8), photometric="rgb")
    refuse["bad_rgb"] = "3 samples per pixel"
    cmap = np.zeros((3, 256), dtype=np.uint16)
    tifffile.imwrite(p("bad_palette"), u8[0], photometric="palette", colormap=cmap)
    refuse["bad_palette"] = "palette"
    tifffile.imwrite(p("bad_channels"), rng.integers(0, 9, size=(4, 5, 8, 9), dtype=np.uint16), imagej=True,
                     metadata={"axes": "ZCYX"})
    refuse["bad_channels"] = "5 channels"
    tifffile.imwrite(p("bad_frames"), rng.integers(0, 9, size=(3, 4, 8, 9), dtype=np.uint16), imagej=True,
                     metadata={"axes": "TZYX"})
    refuse["bad_frames"] = "3 time points"
    with tifffile.TiffWriter(p("bad_sizes")) as tw:
        tw.write(u8[0])
        tw.write(u8[1, :20, :20])
    refuse["bad_sizes"] = "differing size"
    with tifffile.TiffWriter(p("bad_types")) as tw:
        tw.write(u8[0])
        tw.write(u8[1].astype(np.uint16))
    refuse["bad_types"] = "differing size or type"
    # A TZCYX hyperstack read one volume at a time: [file, channel, frame] -> the expected volume.
    select = {}
    hyper = rng.integers(0, 60000, size=(3, 4, 2, 8, 9), dtype=np.uint16)
    tifffile.imwrite(p("hyper_tzcyx"), hyper, imagej=True, metadata={"axes": "TZCYX"})
    for c, t in ((1, 2), (0, 0)):
        save_expected(d, f"hyper_c{c}_t{t}", hyper[t, :, c])
        select[f"hyper_c{c}_t{t}"] = ["hyper_tzcyx", c, t]
    # OME-TIFF in two plane orders (DimensionOrder XYZCT and XYCZT), with physical sizes.
    tifffile.imwrite(p("ome_tczyx"), hyper.transpose(0, 2, 1, 3, 4), ome=True,
                     metadata={"axes": "TCZYX", "PhysicalSizeZ": 0.5, "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1})
    save_expected(d, "ome_tczyx_c1_t2", hyper[2, :, 1], voxel=(0.5, 0.1, 0.1), has_z=True, has_xy=True, unit="um")
    select["ome_tczyx_c1_t2"] = ["ome_tczyx", 1, 2]
    tifffile.imwrite(p("ome_zcyx"), hyper[1], ome=True, metadata={"axes": "ZCYX", "PhysicalSizeZ": 300,
                                                                "PhysicalSizeZUnit": "nm"})
    save_expected(d, "ome_zcyx_c0", hyper[1, :, 0], voxel=(0.3, 1.0, 1.0), has_z=True, unit="um")
    select["ome_zcyx_c0"] = ["ome_zcyx", 0, -1]
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"read": written, "refuse": refuse, "select": select}, f, indent=1)


def main(argv):
    if len(argv) == 4 and argv[1] == "read":
        cmd_read(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "write":
        cmd_write(argv[2])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
