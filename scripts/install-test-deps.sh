#!/usr/bin/env bash
# System packages the test suite uses (Debian/Ubuntu, as root): a real nginx and testssl.sh for the TLS
# tests (nginx is started by the tests only, as a non-daemon process on 127.0.0.1), pango and a font for
# the PDF report (weasyprint) and poppler-utils to see its pages (pdftoppm), headless chromium for the HTML
# report's browser test, wrk for the load benchmark.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends nginx testssl.sh libpango-1.0-0 libpangoft2-1.0-0 \
    fonts-dejavu-core chromium wrk poppler-utils
