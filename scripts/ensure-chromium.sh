#!/usr/bin/env bash
# Installs Debian's Chromium and the CJK fonts the browser tests need, when missing.
set -euo pipefail
if dpkg -s chromium fonts-noto-cjk >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "Installing Debian's chromium and fonts-noto-cjk..." >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  chromium fonts-noto-cjk >/dev/null
