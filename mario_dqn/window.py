"""A live window that shows the game while the agent plays (``python main.py play --window``).

The window lives in a process of its own. OpenGL drivers and TensorFlow do not share
a process safely: Mesa's software renderer (llvmpipe, what a virtual X server such as
Xvfb and many VMs use) links its own LLVM, TensorFlow carries another, and with both
loaded the process crashes (a segfault in LLVM's start-up code or at the first draw,
whichever loads first). So :class:`GameWindow`, in the playing process, only paces the
frames and sends them down a pipe; :func:`_serve`, in a spawned process that never
imports TensorFlow, draws them with pyglet (the library nes-py's own viewer uses) and
reports when the user closes the window.

Closing the window (or pressing Escape, which pyglet turns into a close) sets
:attr:`GameWindow.closed`; the caller asks for it between two agent steps and ends play
there, the way a stop signal does, so nothing is cut off mid-step and a video being
written is closed whole. The window process ignores stop signals, like the env workers
(see :mod:`mario_dqn.signals`): Ctrl-C reaches the whole process group, and the playing
process, which handles it, closes the window itself. If the playing process dies, the
window process reads end-of-file from the pipe and exits.

Frames are held to a wall-clock rate by :class:`Pacer`: the game's own speed by default
(one agent step is ``frame_skip`` NES frames of 1/60 s), or a multiple of it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from multiprocessing.connection import Connection
from typing import Any, Callable

import numpy as np

from mario_dqn import signals
from mario_dqn.errors import UserInputError

NES_WIDTH, NES_HEIGHT = 256, 240
"""The NES screen, the size of every frame ``evaluate`` renders."""

DISPLAY_HINT = ("use --record to write a video instead, or run it on a virtual display: "
                "xvfb-run -a python main.py play --window ...")
"""What a user on a machine without a display can do instead; ends every WindowError."""

EVENT_SLICE_S = 0.02
"""Longest the window process waits for a frame before it handles the window's events
again: a close or Escape is noticed within this."""

START_TIMEOUT_S = 120.0
"""How long the window process may take to start and open its window (a fresh Python,
numpy and pyglet, on a machine that may be busy) before --window gives up."""

CLOSE_TIMEOUT_S = 10.0
"""How long the window process may take to close its window and exit when asked."""


class WindowError(UserInputError):
    """The window cannot be opened here (no display, one that cannot be reached, no
    OpenGL); the message is one line and says what to do instead."""


class Pacer:
    """When each frame is due, for frames shown at a fixed wall-clock interval.

    It keeps a schedule rather than sleeping a fixed time per frame, so the time spent
    stepping the emulator, acting and encoding is absorbed instead of added. A frame that
    comes more than one interval late restarts the schedule at the present: after a
    stall (a slow encode, a busy machine) play goes on at its normal speed instead of
    racing through the frames it missed.
    """

    def __init__(self, interval_s: float) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must be >= 0; got {interval_s!r}")
        self.interval_s = interval_s
        """Seconds between frames; 0 shows every frame at once."""
        self._due: float | None = None

    def delay(self, now: float) -> float:
        """Seconds to wait, from ``now``, before showing the next frame; it is then booked."""
        if self.interval_s == 0:
            return 0.0
        if self._due is None or now > self._due + self.interval_s:
            self._due = now  # first frame, or far behind: start the schedule here
        wait = max(0.0, self._due - now)
        self._due += self.interval_s
        return wait


def frame_interval_s(frame_skip: int, speed: float, nes_fps: float = 60.0) -> float:
    """Wall-clock seconds per agent step at ``speed`` times the game's own pace (0: no wait).

    One agent step is ``frame_skip`` NES frames, and the NES draws ``nes_fps`` a second.
    """
    if speed < 0:
        raise ValueError(f"speed must be >= 0; got {speed!r}")
    return 0.0 if speed == 0 else frame_skip / nes_fps / speed


def check_display() -> None:
    """Refuse at once where a window cannot exist: Linux with no DISPLAY set (pyglet 1.5
    draws through X11; Wayland sessions set DISPLAY for XWayland)."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise WindowError(f"--window needs a display and DISPLAY is not set; {DISPLAY_HINT}")


def window_title(caption: str, episode: int) -> str:
    """The window's title while it shows episode ``episode`` (tests find the window by it)."""
    return f"{caption} - episode {episode}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------- the window process


class _Screen:
    """The pyglet window itself, in the window process: RGB frames scaled up with crisp
    (nearest-neighbour) pixels, aspect ratio kept with black borders when resized. It
    opens hidden and appears with the first frame."""

    def __init__(self, caption: str, width: int, height: int, scale: int) -> None:
        import pyglet

        pyglet.options["debug_gl"] = False  # no glGetError after every call: it only costs time here
        import pyglet.gl as gl
        import pyglet.window

        self._pyglet, self._gl = pyglet, gl
        self.caption = caption
        self._episode: int | None = None
        self._window: Any = pyglet.window.Window(width * scale, height * scale, caption=caption,
                                                 resizable=True, vsync=False, visible=False)

    @property
    def closed(self) -> bool:
        """The user closed the window or pressed Escape (pyglet's default handlers)."""
        return bool(self._window.has_exit)

    def dispatch(self) -> None:
        self._window.dispatch_events()

    def show(self, episode: int, frame: np.ndarray) -> None:
        window, gl = self._window, self._gl
        if episode != self._episode:
            self._episode = episode
            window.set_caption(window_title(self.caption, episode))
        if not window.visible:
            window.set_visible(True)
        window.dispatch_events()
        if self.closed:
            return
        height, width = frame.shape[:2]
        # pyglet's rows go bottom-up; a negative pitch hands it ours top-down
        image = self._pyglet.image.ImageData(width, height, "RGB", np.ascontiguousarray(frame, np.uint8).tobytes(),
                                             pitch=-width * 3)
        texture = image.get_texture()
        gl.glBindTexture(texture.target, texture.id)
        gl.glTexParameteri(texture.target, gl.GL_TEXTURE_MAG_FILTER, gl.GL_NEAREST)
        gl.glTexParameteri(texture.target, gl.GL_TEXTURE_MIN_FILTER, gl.GL_NEAREST)
        window.switch_to()
        window.clear()
        fit = min(window.width / width, window.height / height)
        shown_w, shown_h = int(width * fit), int(height * fit)
        texture.blit((window.width - shown_w) // 2, (window.height - shown_h) // 2, width=shown_w, height=shown_h)
        window.flip()

    def close(self) -> None:
        self._window.close()


def _serve(conn: Connection, caption: str, width: int, height: int, scale: int) -> None:
    """The window process: open the window, say "ready" (or why not), then draw each
    ``(episode, frame)`` received until ``None``, end-of-file or the user closes it
    (then say "closed")."""
    signals.ignore_in_worker()
    try:
        screen = _Screen(caption, width, height, scale)
    except Exception as err:  # pyglet raises its own types, ImportError (no libGL) and OSError alike
        conn.send(("error", type(err).__name__, _one_line(err)))
        return
    conn.send(("ready",))
    try:
        while not screen.closed:
            if conn.poll(EVENT_SLICE_S):
                message = conn.recv()
                if message is None:
                    return
                screen.show(*message)
            screen.dispatch()
        conn.send(("closed",))
    except (EOFError, OSError):  # the playing process is gone: nothing to tell it
        pass
    finally:
        screen.close()


# ------------------------------------------------------------ the playing process


class GameWindow:
    """The play window, seen from the playing process: ``on_frame`` is ``evaluate``'s.

    Creating it starts the window process and waits until the window is open (hidden),
    so that a display that cannot be reached, or a missing OpenGL, is refused before
    anything slow (TensorFlow, the model) starts. Use :meth:`close` (or ``with``) on
    every way out.
    """

    def __init__(self, caption: str, width: int = NES_WIDTH, height: int = NES_HEIGHT, *, scale: int = 2,
                 interval_s: float = 0.0, clock: Callable[[], float] = time.perf_counter) -> None:
        check_display()
        self.caption = caption
        self._pacer = Pacer(interval_s)
        self._clock = clock
        self._closed = False
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of TensorFlow in it
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_conn, caption, width, height, scale),
                                        name="mario-dqn-window", daemon=True)
        with signals.blocked_while_spawning():
            self._process.start()
        child_conn.close()
        reply = self._receive(START_TIMEOUT_S)
        if reply and reply[0] == "ready":
            return
        self.close()
        where = os.environ.get("DISPLAY", "")
        if reply is None:
            raise WindowError(f"--window: the window process did not open a window on the display {where!r} "
                              f"(exit code {self._process.exitcode}); {DISPLAY_HINT}")
        _, kind, text = reply
        if kind == "NoSuchDisplayException":  # pyglet has two classes of that name
            raise WindowError(f"--window cannot connect to the display {where!r} (DISPLAY); {DISPLAY_HINT}")
        raise WindowError(f"--window cannot open a window on the display {where!r} ({kind}: {text}); "
                          f"{DISPLAY_HINT}")

    def _receive(self, timeout: float) -> tuple | None:
        """The window process's next message, or None when it has none in time or is gone."""
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            pass
        return None

    def set_interval(self, interval_s: float) -> None:
        """Show frames ``interval_s`` seconds apart from now on (see :func:`frame_interval_s`);
        known only once the model's config is read, after the window has opened."""
        self._pacer = Pacer(interval_s)

    @property
    def closed(self) -> bool:
        """True once the user closed the window (or pressed Escape), or :meth:`close` ran."""
        if not self._closed:
            try:
                gone = self._conn.poll() and self._conn.recv() == ("closed",)
            except (EOFError, OSError):
                gone = True
            self._closed = gone or not self._process.is_alive()
        return self._closed

    def on_frame(self, episode: int, frame: np.ndarray) -> None:
        """Show ``frame`` (H, W, 3) uint8 RGB when it is due."""
        if self.closed:
            return
        wait = self._pacer.delay(self._clock())
        if wait > 0:
            time.sleep(wait)
        try:
            self._conn.send((episode, frame))
        except OSError:  # BrokenPipeError: the user closed the window a moment ago
            self._closed = True

    def close(self) -> None:
        """Close the window and end its process (idempotent)."""
        self._closed = True
        if self._process.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(CLOSE_TIMEOUT_S)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._conn.close()

    def __enter__(self) -> GameWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
