#!/usr/bin/env bash
# make_device_deps.sh: collects the headers and shared libraries of isonet's Debian dependencies
# into one folder (default .device-carry/deps) so that a GPU machine without these packages can
# build and run the project (every program: tests, benches, the isonet app), and bundles it as
# .device-carry/deps.tar.xz next to a copy of the real test data (.device-carry/shared). On the
# device, scripts/device_env.sh unpacks both and passes the folder as ISONET_DEPS_PREFIX to
# bench/gpu_build.sh (the build step of bench/gpu_check.sh and bench/gpu_demo.sh).
# Runtime dependencies of the libraries (libtiff's codecs, OpenBLAS's gfortran) come along, found
# with ldd; the C/C++ runtime and CUDA libraries do not (the GPU machine has its own).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.device-carry/deps}
rm -rf "$out" && mkdir -p "$out/include" "$out/lib" "$out/share/cmake"
inc=/usr/include
arch=/usr/include/x86_64-linux-gnu
cp -r $inc/doctest $inc/CLI $inc/nlohmann "$out/include/"
cp $inc/fftw3.h $inc/zlib.h $inc/zconf.h $inc/png.h $inc/pngconf.h $inc/pnglibconf.h "$out/include/"
cp $arch/tiff.h $arch/tiffconf.h $arch/tiffio.h $arch/tiffvers.h "$out/include/"
cp -L $arch/cblas.h $arch/openblas_config.h "$out/include/"
cp -r /usr/share/cmake/nlohmann_json "$out/share/cmake/"

libdir=/usr/lib/x86_64-linux-gnu
# The link-time names (libX.so) point at the real files; copy them under their sonames too.
for name in libtiff.so libfftw3f.so libopenblas.so libpng16.so libz.so; do
  real=$(readlink -f "$libdir/$name")
  soname=$(objdump -p "$real" | awk '/SONAME/ {print $2}')
  cp "$real" "$out/lib/$soname"
  ln -sf "$soname" "$out/lib/$name"
done
ln -sf libpng16.so "$out/lib/libpng.so"
# Their own runtime dependencies, minus what every Linux (and the CUDA image) already has.
for lib in "$out"/lib/*.so.*; do
  ldd "$lib" | awk '/=> \// {print $3}'
done | sort -u | while read -r dep; do
  base=$(basename "$dep")
  case "$base" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*) continue ;;
  esac
  [[ -e "$out/lib/$base" ]] || cp -L "$dep" "$out/lib/$base"
done
du -sh "$out"
# The real test data (tests read ../shared/data/real, which does not travel with the repository).
if [[ -d ../shared/data/real ]]; then
  rm -rf "$(dirname "$out")/shared" && mkdir -p "$(dirname "$out")/shared/data"
  cp -r ../shared/data/real "$(dirname "$out")/shared/data/"
fi
# One compressed archive travels far below the device tool's 64 MiB limit (OpenBLAS alone is 35 MB).
tar -C "$(dirname "$out")" -cJf "$out.tar.xz" "$(basename "$out")"
du -sh "$out.tar.xz"
