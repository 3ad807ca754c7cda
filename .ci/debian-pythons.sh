#!/usr/bin/env bash
# debian-pythons.sh DEST MINOR...: CPython 3.MINOR as Debian unstable (sid)
# builds it, unpacked under DEST/root (not installed: nothing of the system
# changes), for the tests to run on CPythons newer than pyenv's (3.14, 3.15).
# Prints the interpreters, comma-separated, for HIGHWATER_TEST_PYTHONS.
#
# Why sid: no package of this machine's Debian (bookworm) carries 3.14 or
# 3.15, there is no PyPI, and python.org is out of reach; Debian's own
# mirror is not. Sid's interpreter needs sid's glibc (2.38+ symbols), so
# that glibc is unpacked beside it and the interpreter is pointed at it
# (patchelf: its loader and DT_RPATH); the shim, built here, runs on it
# unchanged. The versions are whatever sid has today (3.14.10 and 3.15.2 on
# 2026-12-01): the tests derive what they expect from each version.
set -euo pipefail
dest=$1
shift
mirror=http://deb.debian.org/debian
mkdir -p "$dest/debs" "$dest/root"
cd "$dest"
# A day-old index is kept: sid's pool drops a version soon after the next.
if [ ! -s Packages ] || [ -n "$(find Packages -mmin +1440)" ]; then
  curl -fsS --retry 3 -o Packages.xz "$mirror/dists/sid/main/binary-amd64/Packages.xz"
  xz -dc Packages.xz >Packages.new && mv Packages.new Packages
fi

# The interpreter, its standard library, and the shared libraries those
# load, all at sid's versions (bookworm's libssl, libffi... are older).
pkgs="libc6 libgcc-s1 zlib1g libexpat1 libffi8 libssl3t64 libzstd1 libbz2-1.0 liblzma5 libsqlite3-0 libuuid1 libncursesw6 libtinfo6 libreadline8t64 libmpdec4"
for m in "$@"; do pkgs="$pkgs python3.$m-minimal libpython3.$m-minimal libpython3.$m-stdlib"; done
for p in $pkgs; do
  f=$(awk -v p="$p" 'BEGIN { RS = "" } $0 ~ "(^|\n)Package: " p "\n" { print; exit }' Packages | sed -n 's/^Filename: //p')
  if [ -z "$f" ]; then
    echo "debian-pythons: sid has no package $p" >&2
    exit 1
  fi
  deb="debs/$(basename "$f")"
  if [ ! -s "$deb" ]; then
    curl -fsS --retry 3 -o "$deb.part" "$mirror/$f"
    mv "$deb.part" "$deb"
  fi
  dpkg -x "$deb" root
done

lib=$dest/root/usr/lib/x86_64-linux-gnu
out=()
for m in "$@"; do
  exe=$dest/root/usr/bin/python3.$m
  patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$lib:$dest/root/lib/x86_64-linux-gnu" "$exe"
  "$exe" -c 'import sys; assert sys.version_info[:2] == (3, int(sys.argv[1])), sys.version' "$m"
  out+=("$exe")
done
(
  IFS=,
  echo "${out[*]}"
)
