#!/bin/sh
# Debian packages safecity needs outside Python: venv support, npm (models come
# from npm packages), apt-get/dpkg-deb (the sample video comes from a .deb) and,
# with --tests, Chromium and its driver (the console's browser tests), faketime
# (make test-clock-ahead) and GStreamer's RTSP server with the system Python's
# bindings, H.264 encoder and MS-MPEG4 decoder (tests/rtsp_server.py: a real camera),
# and Mosquitto (the alert tests start brokers of their own).
# Installs what is missing when run as root; otherwise says what to install.
set -e
missing=""
python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$missing python3-venv"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v dpkg-deb >/dev/null 2>&1 || missing="$missing dpkg"
if [ "$1" = "--tests" ]; then
    [ -x /usr/bin/chromium ] || missing="$missing chromium"
    [ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
    command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
    command -v mosquitto >/dev/null 2>&1 || missing="$missing mosquitto"
    /usr/bin/python3 -c 'import gi' 2>/dev/null || missing="$missing python3-gi"
    gst=/usr/lib/*/gstreamer-1.0
    ls /usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib >/dev/null 2>&1 \
        || missing="$missing gir1.2-gst-rtsp-server-1.0"
    ls $gst/libgstplayback.so >/dev/null 2>&1 || missing="$missing gstreamer1.0-plugins-base"
    ls $gst/libgstrtp.so >/dev/null 2>&1 || missing="$missing gstreamer1.0-plugins-good"
    ls $gst/libgstx264.so >/dev/null 2>&1 || missing="$missing gstreamer1.0-plugins-ugly"
    ls $gst/libgstlibav.so >/dev/null 2>&1 || missing="$missing gstreamer1.0-libav"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "safecity needs these Debian packages:$missing" >&2
    echo "install them with: sudo apt-get install$missing" >&2
    exit 1
fi
echo "installing Debian packages:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
