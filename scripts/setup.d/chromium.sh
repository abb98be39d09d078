#!/usr/bin/env bash
# Headless Chromium from Debian, for the report test (Tests/DTSTests/Perf/ReportBrowserTests.swift):
# it loads report.html from a real run, takes a screenshot and dumps the DOM. Idempotent; root, Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi
command -v chromium >/dev/null || { echo "chromium: missing after install" >&2; exit 1; }
echo "chromium: $(chromium --version 2>/dev/null | head -n1)"
