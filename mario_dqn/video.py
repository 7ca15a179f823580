"""Write episodes as mp4 files with imageio (its ffmpeg binary ships in the imageio-ffmpeg wheel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class EpisodeVideos:
    """Collect full-resolution RGB frames per episode and write one mp4 per episode.

    Frames are streamed to the encoder as they arrive (an episode can be thousands
    of frames); ``on_frame`` has the signature ``mario_dqn.evaluation.evaluate`` expects.
    """

    def __init__(self, directory: Path, prefix: str, fps: float) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.fps = fps
        self.paths: list[Path] = []
        self._writer = None
        self._episode = -1

    def on_frame(self, episode: int, frame: np.ndarray) -> None:
        if episode != self._episode:
            self.close()
            import imageio.v2 as imageio

            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{self.prefix}-episode-{episode:03d}.mp4"
            self._writer = imageio.get_writer(path, fps=self.fps, codec="libx264", quality=8,
                                              macro_block_size=8, ffmpeg_log_level="error")
            self.paths.append(path)
            self._episode = episode
        self._writer.append_data(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
