#!/usr/bin/env bash
# A Java runtime for the COCO-caption metrics (pycocoevalcap's PTB tokenizer and METEOR 1.5 jars), which
# multi-camera scoring uses as the DriveBench toolkit does; without Java it falls back to labelled
# approximations and the Java tests skip. Idempotent and quiet: does nothing when `java` runs already.
#   bash scripts/setup_java.sh            Debian / Ubuntu (CI, this machine): apt-get install default-jre-headless
#   Kaggle / Colab, in a cell:            !apt-get install -y default-jre-headless
set -uo pipefail
if command -v java >/dev/null 2>&1 && java -version >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[setup_java] no java and no apt-get here: install a Java runtime (JRE >= 8) yourself;" \
       "until then the multi-camera language metrics are approximations and the Java tests skip" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "[setup_java] no java, and apt-get needs root: run 'apt-get install -y default-jre-headless' as root;" \
         "until then the multi-camera language metrics are approximations and the Java tests skip" >&2
    exit 0
  fi
fi
echo "[setup_java] installing default-jre-headless (apt-get)"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if $sudo apt-get update -qq >"$log" 2>&1 && $sudo apt-get install -y -qq --no-install-recommends default-jre-headless >>"$log" 2>&1 \
   && java -version >/dev/null 2>&1; then
  echo "[setup_java] $(java -version 2>&1 | head -n 1)"
else
  tail -n 20 "$log" >&2
  echo "[setup_java] apt-get could not install default-jre-headless (log above): the multi-camera language" \
       "metrics stay approximations and the Java tests skip" >&2
fi
rm -f "$log"
exit 0
