#!/usr/bin/env bash
# Debian packages hanrag uses outside Python, installed only when missing:
#   tesseract-ocr + tesseract-ocr-kor  OCR of scans and images (optional at run time; the tests use it)
#   chromium + chromium-driver          the browser the web page's tests drive (tests only)
#   fonts-nanum                         Korean glyphs for that browser's screenshots (tests only)
# Needs root and apt-get (Debian/Ubuntu); elsewhere it says what to install and carries on.
set -uo pipefail
wanted=()
command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx kor || wanted+=(tesseract-ocr tesseract-ocr-kor)
if [ "${1:-}" = "--with-browser" ]; then
  command -v chromium >/dev/null || wanted+=(chromium)
  command -v chromedriver >/dev/null || wanted+=(chromium-driver)
  [ -d /usr/share/fonts/truetype/nanum ] || wanted+=(fonts-nanum)
fi
[ ${#wanted[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "hanrag: please install these system packages: ${wanted[*]}" >&2
  exit 0
fi
echo "installing ${wanted[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
