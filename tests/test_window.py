"""``play --window``: the live window, tested for real on a virtual X server, and its refusals.

The window tests start their own Xvfb (``-displayfd``: it picks a free display number
itself), run the real CLI on it with the shipped agent, read the window's pixels with
``xwd`` (package x11-apps) while it plays, and close it the ways a user does: the close
button (the window manager's WM_DELETE_WINDOW message), Escape, Ctrl-C. They are
skipped only where the Xvfb binary is absent; ``.ci/run`` installs it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mario_dqn.window import Pacer, frame_interval_s, window_title
from tests.processes import start as start_cli
from tests.processes import group_gone, wait_for

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "save" / "pretrained" / "world-1-1"
TITLE = window_title("mario-dqn: world-1-1", 0)
"""The window's title while it shows the first episode of the shipped agent."""
SKY = np.array([104, 136, 252])
"""World 1-1's sky in nes-py's palette (measured from a rendered frame)."""


def start(*args: str, display: str | None) -> subprocess.Popen:
    """`python main.py ARGS` as its own process group, with DISPLAY set to ``display`` or unset."""
    return start_cli(*args, env={"DISPLAY": display})


# ------------------------------------------------------------------ no X server needed


def test_pacer_keeps_the_schedule_and_does_not_race_after_a_stall():
    pacer = Pacer(0.1)
    assert pacer.delay(10.0) == 0.0  # the first frame is due at once
    assert pacer.delay(10.02) == pytest.approx(0.08)  # work took 20 ms: wait the rest
    assert pacer.delay(10.2) == 0.0  # on time
    assert pacer.delay(10.31) == 0.0  # 10 ms late: shown at once, the schedule is kept
    assert pacer.delay(10.32) == pytest.approx(0.08)
    assert pacer.delay(12.0) == 0.0  # a long stall: start over, no burst of late frames
    assert pacer.delay(12.0) == pytest.approx(0.1)
    assert Pacer(0.0).delay(5.0) == 0.0


def test_the_default_speed_is_the_nes_frame_rate():
    assert frame_interval_s(4, 1.0) == pytest.approx(4 / 60)  # 4 NES frames per agent step
    assert frame_interval_s(4, 2.0) == pytest.approx(2 / 60)
    assert frame_interval_s(4, 0.0) == 0.0  # as fast as possible
    with pytest.raises(ValueError):
        frame_interval_s(4, -1.0)


def free_display() -> str:
    """A display number with no X server behind it."""
    for number in range(150, 400):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return f":{number}"
    raise AssertionError("no free display number")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is how X11 (Linux) names a display")
@pytest.mark.parametrize("display", [None, "unreachable"])
def test_no_display_is_refused_in_one_line_before_the_model_loads(display):
    """DISPLAY unset, or naming no X server: exit 2, one line saying what to do instead.
    The path does not exist, so an error about it would mean the model was tried first."""
    proc = start("play", "/nonexistent/run", "--window", display=free_display() if display else None)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("error: --window "), err
    assert "DISPLAY" in err and "--record" in err and "xvfb-run" in err, err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("args,message", [
    (["--speed", "2"], "--speed only applies with --window"),
    (["--window", "--speed", "-1"], "is not in the range x>=0"),
    (["--window", "--speed", "fast"], "is not a valid float"),
])
def test_bad_window_options_are_refused_in_one_line(args, message):
    proc = start("play", str(PRETRAINED), *args, display=None)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err, err


# ------------------------------------------------------------------ on a virtual X server


@pytest.fixture(scope="module")
def xserver():
    """A fresh Xvfb with one 1024x768x24 screen; its display name, e.g. ':3'.

    ``-noreset``: by default an X server resets itself each time its last client leaves,
    and a connection that arrives during the reset is refused. Between two tests the
    screenshots (one short ``xwd`` client each) and the next play's window connect and
    leave concurrently, so without it a play could be refused the display now and then;
    a desktop's X server, with its long-lived clients, does not reset under a user."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian/Ubuntu: apt-get install xvfb x11-apps; .ci/run does it)")
    assert shutil.which("xwd"), "xwd is needed to read the window's pixels: apt-get install x11-apps"
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1024x768x24",
                               "-nolisten", "tcp", "-noreset"], pass_fds=(write_end,), stderr=subprocess.DEVNULL)
    os.close(write_end)
    number = b""
    try:
        while not number.endswith(b"\n"):
            chunk = os.read(read_end, 16)
            assert chunk, "Xvfb exited before it said which display it took"
            number += chunk
    finally:
        os.close(read_end)
    yield f":{number.decode().strip()}"
    server.terminate()
    server.wait(timeout=30)


def read_xwd(data: bytes) -> np.ndarray:
    """An XWD image (what `xwd` writes) as (H, W, 3) uint8 RGB; 32-bit TrueColor only."""
    header = np.frombuffer(data[:100], ">u4")
    header_size, width, height = int(header[0]), int(header[4]), int(header[5])
    byte_order, bits_per_pixel, bytes_per_line = int(header[7]), int(header[11]), int(header[12])
    masks, colors = tuple(int(m) for m in header[14:17]), int(header[19])
    assert bits_per_pixel == 32 and masks == (0xFF0000, 0xFF00, 0xFF), (bits_per_pixel, masks)
    start = header_size + 12 * colors
    pixels = np.frombuffer(data[start:start + bytes_per_line * height], "<u4" if byte_order == 0 else ">u4")
    pixels = pixels.reshape(height, bytes_per_line // 4)[:, :width]
    return np.stack([(pixels >> 16) & 255, (pixels >> 8) & 255, pixels & 255], axis=-1).astype(np.uint8)


def screenshot(display: str, title: str = TITLE) -> np.ndarray | None:
    """The pixels of the window called ``title``, or None while there is no such window."""
    shot = subprocess.run(["xwd", "-silent", "-display", display, "-name", title], capture_output=True)
    return read_xwd(shot.stdout) if shot.returncode == 0 else None


def sky_share(image: np.ndarray) -> float:
    return float(np.mean(np.all(np.abs(image.astype(int) - SKY) <= 24, axis=-1)))


def test_the_window_shows_the_game_while_it_plays_and_records(xserver, tmp_path):
    """At four times the game's speed, with --record: the window shows Mario's World 1-1 (mostly
    sky), the episode ends with exit 0, the window is gone, and the video is whole."""
    proc = start("play", str(PRETRAINED), "--window", "--speed", "4", "--record", "--video-dir", str(tmp_path),
                 display=xserver)
    try:
        wait_for(lambda: screenshot(xserver) is not None or proc.poll() is not None, "the window")
        time.sleep(1.0)  # a second of play: Mario has moved on from the first frame
        shot = screenshot(xserver)
        assert shot is not None, proc.communicate(timeout=60)[1][-3000:]
        import imageio.v2 as imageio

        imageio.imwrite(tmp_path / "screenshot.png", shot)  # to look at when this fails
        assert shot.shape == (480, 512, 3)  # the 256x240 screen at twice its size
        assert sky_share(shot) > 0.5, f"not the game: {sky_share(shot):.0%} sky; see {tmp_path / 'screenshot.png'}"
        assert shot.mean() > 60, "a black window"
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and err.strip() == "", err[-3000:]
    expected = json.loads((PRETRAINED / "results.json").read_text())["per_episode"][0]  # seed 0
    assert out.startswith(f"episode 0: stage 1-1 return {expected['return']:.2f} x_pos {expected['x_pos']}"), out
    assert screenshot(xserver) is None, "the window outlived play"
    wait_for(lambda: group_gone(proc.pid), "the window process to exit", timeout=30)
    reader = imageio.get_reader(next(tmp_path.glob("*.mp4")))
    assert reader.count_frames() == expected["length"] + 1  # the reset frame, then one per agent step
    reader.close()


def _x_window(display: str, title: str) -> int:
    """The id of the top-level window called ``title`` (through pyglet's Xlib bindings)."""
    from pyglet.libs.x11 import xlib

    connection = xlib.XOpenDisplay(display.encode())
    root, parent = xlib.Window(), xlib.Window()
    children, count = ctypes.POINTER(xlib.Window)(), ctypes.c_uint()
    try:
        xlib.XQueryTree(connection, xlib.XDefaultRootWindow(connection), ctypes.byref(root),
                        ctypes.byref(parent), ctypes.byref(children), ctypes.byref(count))
        for i in range(count.value):
            name = ctypes.c_char_p()
            if xlib.XFetchName(connection, children[i], ctypes.byref(name)) and name.value == title.encode():
                return int(children[i])
        raise AssertionError(f"no window called {title!r}")
    finally:
        if children:
            xlib.XFree(children)
        xlib.XCloseDisplay(connection)


def _close_as_a_user(display: str, title: str, how: str) -> None:
    """Press the window's close button (what a window manager then sends: a WM_DELETE_WINDOW
    client message) or Escape (a key press), as X events sent to the window."""
    from pyglet.libs.x11 import xlib

    window = _x_window(display, title)
    connection = xlib.XOpenDisplay(display.encode())
    try:
        event = xlib.XEvent()
        if how == "close button":
            event.xclient.type = xlib.ClientMessage
            event.xclient.window = window
            event.xclient.message_type = xlib.XInternAtom(connection, b"WM_PROTOCOLS", False)
            event.xclient.format = 32
            event.xclient.data.l[0] = xlib.XInternAtom(connection, b"WM_DELETE_WINDOW", False)
            mask = xlib.NoEventMask
        else:
            event.xkey.type = xlib.KeyPress
            event.xkey.window = window
            event.xkey.root = xlib.XDefaultRootWindow(connection)
            event.xkey.same_screen = True
            event.xkey.keycode = xlib.XKeysymToKeycode(connection, 0xFF1B)  # XK_Escape
            mask = xlib.KeyPressMask
        xlib.XSendEvent(connection, window, False, mask, ctypes.byref(event))
        xlib.XFlush(connection)
    finally:
        xlib.XCloseDisplay(connection)


@pytest.mark.parametrize("how", ["close button", "Escape", "Ctrl-C"])
def test_play_ends_cleanly_when_the_window_is_closed_or_on_ctrl_c(xserver, how):
    """Closing the window ends play with exit 0, Ctrl-C with 130 (sent to the whole process
    group, as a terminal does); either way one line, no traceback, and the window and its
    process are gone."""
    proc = start("play", str(PRETRAINED), "--window", "--episodes", "3", display=xserver)
    try:
        wait_for(lambda: screenshot(xserver) is not None or proc.poll() is not None, "the window")
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.5)
        if how == "Ctrl-C":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            _close_as_a_user(xserver, TITLE, how)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    expected = ((130, "stopped by SIGINT during episode 0 (0 of 3 finished)\n") if how == "Ctrl-C"
                else (0, "window closed during episode 0 (0 of 3 finished)\n"))
    assert (proc.returncode, err) == expected, err[-3000:]
    assert out == ""
    assert screenshot(xserver) is None, "the window outlived play"
    wait_for(lambda: group_gone(proc.pid), "the window process to exit", timeout=30)
