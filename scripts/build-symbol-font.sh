#!/usr/bin/env bash
# How chat/static/fonts/hanrag-symbols.woff2 was made (run once; the file is committed, nothing runs this at
# set-up or run time). Korean public documents use characters most Korean system fonts lack — ｢｣ (U+FF62/3),
# the archaic vowel ᆞ (U+119E), ㆍ, circled numbers, □○※ bullets — so the page ships them: a subset of
# Noto Sans CJK KR Regular (SIL Open Font License 1.1, chat/static/fonts/OFL.txt) from Debian's
# fonts-noto-cjk 1:20220127+repack1-1, made with fontTools' pyftsubset.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download fonts-noto-cjk=1:20220127+repack1-1
dpkg-deb -x fonts-noto-cjk_*.deb unpacked
python3 -m venv tools
tools/bin/pip install --quiet fonttools==4.60.1 brotli==1.1.0
tools/bin/pyftsubset unpacked/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc --font-number=1 \
    --unicodes="U+119E,U+11A2,U+3130-318F,U+FF61-FF65,U+2460-24FF,U+3200-32FF,U+3000-303F,U+25A0-25FF,U+2190-21FF,U+203B" \
    --layout-features='*' --flavor=woff2 --output-file=hanrag-symbols.woff2
cp hanrag-symbols.woff2 "$OLDPWD/chat/static/fonts/"
