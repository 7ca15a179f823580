"""Build notebooks/mario_dqn.ipynb from the cells below (kept as code so diffs stay reviewable).

The notebook is stored with its outputs (the figures and tables of its small real run), so
a reader on a code forge sees the frames, the curves and the agent's view without running
it; --execute runs it top to bottom in a fresh kernel, in the repository root, and stores them.

Run: .venv/bin/python notebooks/build_notebook.py --execute   (a few minutes: it trains TRAIN_STEPS steps)
"""

import argparse
import os
from pathlib import Path

import nbformat as nbf

NOTEBOOK = Path(__file__).with_name("mario_dqn.ipynb")
ROOT = Path(__file__).resolve().parent.parent

cells = []


def md(text: str) -> None:
    cells.append(nbf.v4.new_markdown_cell(text.strip()))


def code(text: str) -> None:
    cells.append(nbf.v4.new_code_cell(text.strip()))


md("""
# Exploring mario-dqn

This notebook walks through the pieces of mario-dqn with its public API: the
environment and its preprocessing, the action sets, the Q-network and the Double-DQN
target, the replay memory, a short training run with its learning curves, a
recorded episode, and what the network sees and values in it. Run it top to bottom;
`TRAIN_STEPS` keeps the training run short (the test suite makes it tiny through the
`MARIO_DQN_NB_STEPS` variable). It imports the installed project (`make` installs it into
`.venv`); the outputs stored with it are those of one such run.
""")
code("""
import os, tempfile
from pathlib import Path

TRAIN_STEPS = int(os.environ.get("MARIO_DQN_NB_STEPS", 3000))   # agent steps of the demo run
RUN_ROOT = Path(os.environ.get("MARIO_DQN_NB_RUNS", tempfile.mkdtemp(prefix="mario-dqn-nb-")))

import numpy as np
import matplotlib.pyplot as plt
%matplotlib inline
%config InlineBackend.figure_formats = ["png"]
plt.rcParams["figure.dpi"] = 50   # figures are stored in the notebook: small PNGs
import config as C
from mario_dqn.environment import make_env, action_meanings, ACTIONS
print("training steps for the demo run:", TRAIN_STEPS, "| runs go to", RUN_ROOT)
""")
md("""
## 1. The game frame and each preprocessing stage

The emulator gives a 240x256 RGB screen. mario-dqn reads nes-py's native grayscale
screen, max-pools the last two of every 4 frames (sprites flicker), resizes to 84x84
with `cv2.INTER_AREA` and stacks the last 4 frames channels-last.
""")
code("""
import cv2
from mario_dqn.environment import find_wrapper
from mario_dqn.wrappers import SkipMaxPool
env = make_env(C.EnvConfig(), seed=0, render_mode="rgb_array")
obs, info = env.reset(seed=0)
for _ in range(30):
    obs, reward, terminated, truncated, info = env.step(1)   # run right
rgb = env.render().copy()
before_last, last = find_wrapper(env, SkipMaxPool).last_two_frames()   # raw grayscale, 240x256
pooled = np.maximum(before_last, last)
small = cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA)
assert np.array_equal(small, obs[..., -1]), "the newest stacked frame is the resized max-pool"
stages = [(rgb, "RGB 240x256"), (before_last, "gray, frame t-1"), (last, "gray, frame t"),
          (pooled, "max-pool"), (small, "resized 84x84")]
fig, axes = plt.subplots(2, 5, figsize=(17, 7))
for ax, (img, title) in zip(axes[0], stages):
    ax.imshow(img, cmap=None if img.ndim == 3 else "gray"); ax.set_title(title)
for i in range(obs.shape[-1]):
    axes[1, i].imshow(obs[..., i], cmap="gray"); axes[1, i].set_title(f"stack[{i}] (oldest first)")
axes[1, 4].imshow(np.abs(obs[..., -1].astype(int) - obs[..., 0].astype(int)), cmap="magma")
axes[1, 4].set_title("|stack[3] - stack[0]|: motion")
for ax in axes.flat:
    ax.axis("off")
plt.show()
print("observation:", obs.shape, obs.dtype, "| info:", info)
""")
md("## 2. Action sets\n\nEach discrete action is a combination of NES buttons (nes-py's `JoypadSpace`).")
code("""
for name in ACTIONS:
    meanings = action_meanings(C.EnvConfig(action_set=name))
    print(f"{name:11s} {len(meanings):2d} actions: " + ", ".join(f"{i}={m}" for i, m in enumerate(meanings)))
""")
md("""
## 3. The network and the Double-DQN target

Nature-DQN torso with a dueling head; uint8 frames go in, the /255 scaling is inside
the model. The n-step target is `R + discount * Q_target(s', argmax_a Q_online(s', a))`,
where `discount` is `gamma**k`, or 0 when the episode terminated inside the window.
""")
code("""
from mario_dqn.agent import DQNAgent
agent = DQNAgent(len(ACTIONS["simple"]), (84, 84, 4), C.AgentConfig(), seed=0)
agent.online.summary()
print("parameters:", agent.online.count_params())
""")
md("## 4. The replay memory\n\nEach 84x84 frame is stored once; stacks and n-step returns are rebuilt by index.")
code("""
from mario_dqn.replay import ReplayMemory
memory = ReplayMemory(capacity=2000, num_envs=1, n_step=3, gamma=0.99, seed=0)
obs, _ = env.reset(seed=0)
rng = np.random.default_rng(0)
for _ in range(300):
    action = int(rng.integers(env.action_space.n))
    next_obs, reward, terminated, truncated, _ = env.step(action)
    memory.add(obs[None], np.array([action]), np.array([reward]), next_obs[None],
               np.array([terminated]), np.array([truncated]))
    obs = next_obs if not (terminated or truncated) else env.reset()[0]
print(f"stored {len(memory)} transitions; {memory.bytes_per_transition():,.0f} bytes per transition "
      f"(storing obs and next_obs stacks would take {2 * 84 * 84 * 4:,})")
batch = memory.sample(8)
print({k: v.shape for k, v in batch._asdict().items()})
y = agent.td_target(batch)
print("Double-DQN n-step targets of one real batch:", np.round(y, 3))
""")
md("## 5. A short training run and its learning curves")
code("""
from mario_dqn.run_dir import write_config
from mario_dqn.runner import Trainer
cfg = C.apply_overrides(C.Config(), [f"total_steps={TRAIN_STEPS}", "learning_starts=200", "capacity=5000",
                                     f"eval_every={max(TRAIN_STEPS // 2, 1)}", "eval_episodes=1",
                                     "max_episode_steps=300", f"checkpoint_every={TRAIN_STEPS}"])
run_dir = RUN_ROOT / "demo"
(run_dir / "videos").mkdir(parents=True, exist_ok=True)
write_config(run_dir, cfg)
result = Trainer(cfg, run_dir, progress=False).run()
print(result)
""")
code("""
import csv
rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
episodes = [r for r in rows if r["kind"] == "episode"]
steps = [int(r["step"]) for r in episodes]
fig, axes = plt.subplots(1, 4, figsize=(16, 3))
for ax, key in zip(axes, ["return", "x_pos", "epsilon", "loss"]):
    ax.plot(steps, [float(r[key]) if r[key] not in ("", "nan") else np.nan for r in episodes], ".-")
    ax.set_title(key); ax.set_xlabel("agent steps")
plt.show()
""")
md("""
## 6. Load the checkpoint and watch an episode

A few thousand steps teach little: the greedy agent of this short run may well stand
still (the shipped agents in `save/pretrained/` trained for 150k-550k steps;
`python main.py play --stage 1-1` shows one).
""")
code("""
from IPython.display import Video, display
from mario_dqn import checkpoint as ckpt
from mario_dqn.build import build_agent
from mario_dqn.evaluation import evaluate
from mario_dqn.video import EpisodeVideos
loaded = ckpt.load_checkpoint(run_dir)
player = build_agent(loaded.config, len(ACTIONS[loaded.config.env.action_set]))
ckpt.restore_agent(loaded, player)
recorder = EpisodeVideos(run_dir / "videos", "notebook", fps=15)
outcome = evaluate(player, loaded.config, episodes=1, seed=0, on_frame=recorder.on_frame)
recorder.close()
print(outcome["per_episode"][0])
display(Video(str(recorder.paths[0]), embed=True, width=256))   # plays here; a code forge shows the frames below
import imageio.v2 as imageio
frames = imageio.mimread(recorder.paths[0], memtest=False)
picks = np.linspace(0, len(frames) - 1, 6).astype(int)
fig, axes = plt.subplots(1, 6, figsize=(18, 3.2))
for ax, i in zip(axes, picks):
    ax.imshow(frames[i]); ax.set_title(f"frame {i} of {len(frames)}"); ax.axis("off")
plt.show()
""")
md("""
## 7. What the agent sees and values

`python main.py play --record --explain` writes a video of such frames, one per step:
the game, the network's actual input (its four stacked 84x84 frames, oldest first) and
the Q-value of every action, the chosen one highlighted (orange: greedy, magenta: random
or a forced no-op start), with the step, x_pos, return so far and epsilon under the
input frames. Here the last decision of a short greedy episode of the checkpoint above.
""")
code("""
from mario_dqn.explain import compose_view
short = C.apply_overrides(loaded.config, ["max_episode_steps=40"])
views = []   # evaluate's on_step hands over every state with what the network saw and valued
evaluate(player, short, episodes=1, seed=0, noop_max=0, on_step=views.append)
view = [v for v in views if v.action is not None][-1]
plt.figure(figsize=(16, 6))
plt.imshow(compose_view(view, action_meanings(short.env))); plt.axis("off")
plt.show()
print(f"step {view.step}, x_pos {view.x_pos}: Q-values {np.round(view.q_values, 3)}")
""")



def build() -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb["cells"] = cells
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute(nb: nbf.NotebookNode) -> None:
    """Run ``nb`` top to bottom in a fresh kernel whose working directory is the repository
    root (what a reader who opens it there gets), keeping its outputs."""
    import nbclient

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps: noise in every diff


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run it and store its outputs")
    args = parser.parse_args()
    notebook = build()
    if args.execute:
        execute(notebook)
    nbf.write(notebook, NOTEBOOK)
    print("wrote", NOTEBOOK, f"({NOTEBOOK.stat().st_size / 1e6:.2f} MB)")
