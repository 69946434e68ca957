#!/usr/bin/env bash
# Install the Debian packages the report and the browser test need, when they
# are missing and we can (root with apt-get). Otherwise say what is missing and
# carry on: the tests that need them are skipped with a visible reason (in CI
# they fail instead).
set -u
need=()
command -v xelatex >/dev/null 2>&1 || need+=(texlive-xetex texlive-fonts-recommended texlive-plain-generic)
command -v pandoc >/dev/null 2>&1 || need+=(pandoc)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
[ -x /usr/lib/chromium/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "sysdeps: installing ${need[*]} (one-time, a few minutes)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || { echo "sysdeps: apt-get could not install ${need[*]}" >&2; exit 1; }
else
  echo "sysdeps: missing Debian packages: ${need[*]} (install them as root: apt-get install --no-install-recommends ${need[*]}); PDF and browser tests will be skipped" >&2
fi
