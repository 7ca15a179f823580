"""The training loop: act -> step envs -> store -> learn -> log -> evaluate -> checkpoint.

One code path for one or many envs: the envs are always a Gymnasium AsyncVectorEnv
with same-step auto-reset, even for one env, because its ``step_async``/``step_wait``
let emulation (in the env processes) overlap with the learning step (in this one). The replay ratio is
counted in agent steps summed over envs, so runs with different ``num_envs`` stay
comparable: after ``learning_starts`` there is one update per ``train_freq`` steps.

Everything the loop depends on is in the checkpoint (see ``mario_dqn.checkpoint``),
including each env's running episode, so a resumed run produces the same numbers as
an uninterrupted one. The periodic evaluations follow :mod:`mario_dqn.evaluation`'s
protocol; the loop only calls it and logs the result.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

import config as C
from mario_dqn import checkpoint as ckpt
from mario_dqn.build import build_agent, seed_everything
from mario_dqn.environment import final_observations, make_vector_env, taken_actions
from mario_dqn.evaluation import EVAL_SEED_OFFSET, EvaluationStopped, evaluate, evaluate_each_stage
from mario_dqn.metrics_log import MalformedMetrics, MetricsLog
from mario_dqn.replay import make_replay
from mario_dqn.run_dir import checkpoints_dir, models_dir, start_over
from mario_dqn.schedules import linear_schedule
from mario_dqn.signals import StopRequest
from mario_dqn.solved import CHECK_SEED, CONFIRMED, STREAK, check_due, is_solved, next_streak

RECENT_EPISODES = 20
"""Episodes behind the progress bar's mean return."""
POSTFIX_EVERY = 200
"""Agent steps between progress-bar postfix refreshes when no episode ended (the
postfix is formatted text: once per step would cost more than the step's bookkeeping)."""


@dataclass
class Counters:
    """The loop's counters and running figures, saved in state.json under these names.

    Declared once: :meth:`Trainer.state` and :meth:`Trainer.restore` go through
    :meth:`to_json` and :meth:`from_json`, so a new counter is one new line here.
    """

    episodes: int = 0
    flags: int = 0
    best_x: int = 0
    best_eval: float | None = None
    """Best mean evaluation return so far (what ``checkpoints/best`` holds)."""
    last_loss: float = math.nan
    last_mean_q: float = math.nan
    recent_returns: list[float] = field(default_factory=list)
    """Returns of the last :data:`RECENT_EPISODES` episodes, oldest first."""
    eval_pending: bool = False
    """An evaluation that a stop signal cut short: the resumed run does it first."""
    solved_streak: int = 0
    """Evaluations in a row at ``runner.solved_flag_rate`` flags (mario_dqn.solved)."""
    looped: bool = False
    """A training episode has ended at a castle maze's loop (``agent.loop_gamma`` is on from then)."""
    solved_confirmed: bool = False
    """The solved streak's check on ``runner.solved_episodes`` episodes passed (mario_dqn.solved)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    ADDED_LATER: ClassVar[frozenset[str]] = frozenset({"eval_pending", "solved_streak", "looped", "solved_confirmed"})
    """Counters that older checkpoints lack: they keep their defaults there. Any other
    missing one is a damaged state.json (KeyError), never a silent zero."""

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Counters:
        """The counters of a state.json (KeyError naming one it lacks)."""
        return cls(**{f.name: state[f.name] for f in dataclasses.fields(cls)
                      if f.name in state or f.name not in cls.ADDED_LATER})

    def end_episode(self, episode_return: float, x_pos: int, flag: bool) -> None:
        self.episodes += 1
        self.flags += int(flag)
        self.best_x = max(self.best_x, x_pos)
        self.recent_returns = [*self.recent_returns, episode_return][-RECENT_EPISODES:]


class Trainer:
    """Owns one run directory and trains it up to ``config.runner.total_steps``."""

    def __init__(self, config: C.Config, run_dir: Path, *, progress: bool = True,
                 log: Callable[[str], None] = print, stop: StopRequest | None = None) -> None:
        """``stop``: a StopRequest the caller entered before building this (so a signal
        during the start, restoring included, stops the run before its first step)."""
        self.config = config
        self.run_dir = Path(run_dir)
        self.ckpt_dir = checkpoints_dir(self.run_dir)
        self.progress = progress
        self.log = log
        self.metrics = MetricsLog(self.run_dir)
        self.stop = stop if stop is not None else StopRequest()
        self._clock_start = time.perf_counter()
        self._wall_before = 0.0
        """Seconds of training in earlier processes of this run (from the checkpoint)."""
        seed_everything(config.runner.seed)
        n = config.runner.num_envs
        self.envs = make_vector_env(config.env, n, asynchronous=True)
        self.agent = build_agent(config, int(self.envs.single_action_space.n))
        self.replay = make_replay(config.replay, config.agent, config.env, n, config.runner.seed)
        self.step = 0
        self.start_over: str | None = None
        """The action set this run must start over with (``env.loop_action_set``), once a loop asked for it."""
        self.counters = Counters()
        self.ep_return = np.zeros(n, np.float64)
        """Return so far of each env's running episode."""
        self.ep_length = np.zeros(n, np.int64)
        self.obs, _ = self.envs.reset(seed=config.runner.seed)

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """The loop's part of state.json (the checkpoint adds the step and the agent's)."""
        return {
            **self.counters.to_json(),
            "ep_return": self.ep_return.tolist(), "ep_length": self.ep_length.tolist(),
            "wall_s": self.wall_s(),
            "envs": list(self.envs.call("get_episode_state")),
        }

    def restore(self, checkpoint: ckpt.Checkpoint) -> None:
        """Continue exactly where ``checkpoint`` stopped (weights, optimizer, replay, episodes)."""
        state = checkpoint.state
        if len(state.get("envs", [])) != self.config.runner.num_envs:
            raise ckpt.CheckpointError(f"{checkpoint.path / 'state.json'} was saved with a different env count")
        ckpt.restore_agent(checkpoint, self.agent)
        if checkpoint.has_replay:
            try:
                self.replay.load(checkpoint.path / "replay")
            except ValueError as err:
                raise ckpt.CheckpointError(str(err)) from None
        else:
            self.log(f"note: {checkpoint.path.name} has no replay memory; refilling it from scratch")
        self.step = int(state["step"])
        self.counters = Counters.from_json(state)
        self.ep_return = np.asarray(state["ep_return"], np.float64)
        self.ep_length = np.asarray(state["ep_length"], np.int64)
        if self.counters.looped:
            self._lengthen_horizon()
        self._wall_before = float(state.get("wall_s", 0.0))  # absent before it existed: the clock starts here
        self.envs.set_attr("pending_state", list(state["envs"]))
        restored = self.envs.call("restore_pending")
        self.obs = np.stack([obs for obs, _ in restored])
        try:
            self.metrics.truncate_after(self.step)
        except MalformedMetrics as err:
            raise ckpt.CheckpointError(str(err)) from None

    def start_from(self, policy: ckpt.Policy) -> None:
        """Begin this new run from ``policy``'s weights (``train --init-from``): every network
        of the agent gets them; optimizer, replay and counters stay as a new run's."""
        ckpt.restore_policy(policy, self.agent)

    def wall_s(self) -> float:
        """Seconds of training in this run so far, across resumes."""
        return self._wall_before + time.perf_counter() - self._clock_start

    # -------------------------------------------------------------- the loop

    def epsilon(self) -> np.ndarray:
        """Each env's exploration rate now (the same for all): epsilon_start falling
        linearly to epsilon_end over epsilon_decay_steps."""
        a = self.config.agent
        rate = linear_schedule(self.step, a.epsilon_start, a.epsilon_end, a.epsilon_decay_steps)
        return np.full(self.config.runner.num_envs, rate)

    def _updates_due(self) -> int:
        a = self.config.agent
        if self.step < a.learning_starts:
            return 0
        return (self.step - a.learning_starts) // a.train_freq

    def _learn(self) -> None:
        a, r = self.config.agent, self.config.replay
        while self.agent.updates < self._updates_due() and self.replay.can_sample(a.batch_size):
            beta = linear_schedule(self.step, r.beta_start, 1.0, r.beta_steps)
            batch = self.replay.sample(a.batch_size, beta=beta)
            out = self.agent.train_step(batch)
            self.replay.update_priorities(batch.index, out["td_errors"])  # a no-op for uniform replay
            self.counters.last_loss, self.counters.last_mean_q = out["loss"], out["mean_q"]

    def _note(self, message: str) -> None:
        """A line in the middle of training: above the progress bar when there is one."""
        if self.progress:
            from tqdm import tqdm

            tqdm.write(message)
        else:
            self.log(message)

    def _lengthen_horizon(self) -> None:
        """Discount with ``agent.loop_gamma`` from now on (when it is set)."""
        if self.config.agent.loop_gamma > 0 and self.replay.gamma != self.config.agent.loop_gamma:
            self.replay.set_gamma(self.config.agent.loop_gamma)

    def _end_episodes(self, done: np.ndarray, info: dict[str, Any], epsilon: np.ndarray, sps: float) -> None:
        final, c = info["final_info"], self.counters
        looped = np.asarray(final.get("looped", np.zeros(len(done), bool)), bool) & done
        if looped.any() and not c.looped:
            c.looped = True
            wanted, env = self.config.env.loop_action_set, self.config.env
            if wanted and wanted != env.action_set:
                if self.config.runner.init_from:
                    self._note(f"step {self.step:,}: the game looped Mario back for a wrong route; not starting over "
                               f"with {wanted} (env.loop_action_set): runner.init_from's policy has "
                               f"{env.action_set}'s actions")
                else:
                    self.start_over = wanted
                    self._note(f"step {self.step:,}: the game looped Mario back for a wrong route; starting over "
                               f"from step 0 with env.action_set={wanted} instead of {env.action_set} "
                               f"(env.loop_action_set: a maze's way out can need Left)")
            if self.config.agent.loop_gamma > 0 and self.start_over is None:
                self._lengthen_horizon()
                self._note(f"step {self.step:,}: the game looped Mario back for a wrong route; "
                           f"gamma {self.config.agent.gamma} -> {self.config.agent.loop_gamma} (agent.loop_gamma)")
        for i in np.flatnonzero(done):
            x_pos, flag = int(final["x_pos"][i]), bool(final["flag_get"][i])
            stage = f"{int(final['world'][i])}-{int(final['stage'][i])}"
            c.end_episode(float(self.ep_return[i]), x_pos, flag)
            self.metrics.write({"kind": "episode", "step": self.step, "episode": c.episodes, "stage": stage,
                                "return": round(float(self.ep_return[i]), 6), "length": int(self.ep_length[i]),
                                "x_pos": x_pos, "flag": int(flag), "epsilon": round(float(epsilon[i]), 6),
                                "loss": c.last_loss, "mean_q": c.last_mean_q, "steps_per_s": round(sps, 1),
                                "wall_s": round(self.wall_s(), 1),
                                "restart_steps": int(final["restart_steps"][i]) if "restart_steps" in final else ""})
            self.ep_return[i] = 0.0
            self.ep_length[i] = 0

    def _play(self, kind: str, episodes: int, seed: int) -> tuple[Any, list[float]] | None:
        """Play ``episodes`` evaluation episodes from ``seed`` and write their ``kind`` rows
        to metrics.csv (the pooled row, and with several stages each stage's own, which
        the pooled row can hide). Returns the evaluation and each stage's flag rate (one
        for a one-stage run), or None when a stop signal cut it short (no row written)."""
        several = len(self.config.env.stages) > 1
        play = evaluate_each_stage if several else evaluate
        try:
            result = play(self.agent, self.config, episodes, seed, self.config.runner.eval_epsilon,
                          stop=lambda: self.stop.name is not None)
        except EvaluationStopped:
            return None
        c = self.counters
        self.metrics.write({"kind": kind, "step": self.step, "episode": c.episodes,
                            "return": round(result["mean_return"], 6), "x_pos": result["mean_x_pos"],
                            "max_x_pos": result["max_x_pos"], "flag_rate": result["flag_rate"],
                            "wall_s": round(self.wall_s(), 1)})
        parts = result["per_stage"] if several else {}
        for stage, part in parts.items():
            self.metrics.write({"kind": kind, "step": self.step, "episode": c.episodes, "stage": stage,
                                "return": round(part["mean_return"], 6), "x_pos": part["mean_x_pos"],
                                "flag_rate": part["flag_rate"], "wall_s": round(self.wall_s(), 1)})
        return result, ([part["flag_rate"] for part in parts.values()] if several else [result["flag_rate"]])

    def _evaluate(self) -> None:
        """Evaluate now; a stop signal during it leaves it pending for the resumed run
        (it touches no training state, so doing it later gives the same row)."""
        r, c = self.config.runner, self.counters
        c.eval_pending = True
        played = self._play("eval", r.eval_episodes, r.seed + EVAL_SEED_OFFSET)
        if played is None:
            return
        c.eval_pending = False
        result, rates = played
        c.solved_streak = next_streak(c.solved_streak, rates, r.solved_flag_rate)
        score = result["mean_return"]
        if c.best_eval is None or score > c.best_eval:
            c.best_eval = score
            ckpt.save_checkpoint(self.ckpt_dir, self.step, self.agent, self.state(), self.config, name="best")
        if self._check_due():
            self._check_solved()

    def _check_due(self) -> bool:
        return check_due({STREAK: self.counters.solved_streak, CONFIRMED: self.counters.solved_confirmed},
                         self.config.runner)

    def _check_solved(self) -> None:
        """The solved streak's check: ``runner.solved_episodes`` greedy episodes on the
        harness's seeds (``check`` rows in metrics.csv). Short of the rate, the streak
        starts over and training goes on. Like an evaluation it touches no training
        state; a stop signal during it leaves it due, and the resumed run does it first."""
        r, c = self.config.runner, self.counters
        played = self._play("check", r.solved_episodes, CHECK_SEED)
        if played is None:
            return
        rates = played[1]
        said = (f"solved check at step {self.step}: {min(rates):.0%} flags on {r.solved_episodes} episodes "
                f"(seeds {CHECK_SEED}-{CHECK_SEED + r.solved_episodes - 1})")
        if all(rate >= r.solved_flag_rate for rate in rates):
            c.solved_confirmed = True
            self.log(said)
        else:
            c.solved_streak = 0
            self.log(f"{said}, under {r.solved_flag_rate:.0%}: the streak starts over, training goes on")

    def save(self) -> Path:
        replay = self.replay if self.config.runner.save_replay else None
        state = self.state()
        path = ckpt.save_checkpoint(self.ckpt_dir, self.step, self.agent, state, self.config, replay)
        ckpt.write_latest_pointer(self.ckpt_dir, path)
        ckpt.prune(self.ckpt_dir, self.config.runner.keep_checkpoints)
        if self.config.runner.keep_models:
            ckpt.keep_model(models_dir(self.run_dir), self.step, self.agent,
                            {"wall_s": state["wall_s"], "episodes": self.counters.episodes,
                             "flags": self.counters.flags})
        self.metrics.flush()
        return path

    def run(self) -> dict[str, Any]:
        """Train until ``total_steps`` or a stop signal (SIGINT, SIGTERM, SIGHUP); always
        end with a checkpoint. A second signal while it is written is only acknowledged."""
        with self.stop:
            return self._run()

    def _run(self) -> dict[str, Any]:
        r, c = self.config.runner, self.counters
        n = r.num_envs
        self.metrics.open()
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=r.total_steps, initial=self.step, unit="step", dynamic_ncols=True, smoothing=0.05)
        started, started_step = time.perf_counter(), self.step
        last_path, saved_step = None, None
        try:
            if c.eval_pending:
                self._evaluate()
            if self._check_due() and self.stop.name is None:
                self._check_solved()
            while self.step < r.total_steps and self.stop.name is None and not self.solved():
                epsilon = self.epsilon()
                actions = self.agent.act(self.obs, epsilon)
                # The envs emulate in their own processes while this one learns: the two
                # costs overlap on two cores. Learning sees the transitions stored so far,
                # the same ones at the same step in every run, so resume stays exact.
                self.envs.step_async(actions)
                self._learn()
                obs, reward, terminated, truncated, info = self.envs.step_wait()
                actions = taken_actions(actions, info)
                next_obs = final_observations(obs, terminated, truncated, info)
                self.replay.add(self.obs, actions, reward, next_obs, terminated, truncated)
                self.obs = obs
                before = self.step
                self.step += n
                self.ep_return += reward
                self.ep_length += 1
                done = np.logical_or(terminated, truncated)
                sps = (self.step - started_step) / max(time.perf_counter() - started, 1e-9)
                if done.any():
                    self._end_episodes(done, info, epsilon, sps)
                    if self.start_over is not None:
                        break
                if r.eval_every and self.step // r.eval_every > before // r.eval_every:
                    self._evaluate()
                if self.step // r.checkpoint_every > before // r.checkpoint_every and self.step < r.total_steps:
                    last_path, saved_step = self.save(), self.step
                if bar is not None:
                    bar.update(n)
                    if done.any() or self.step % POSTFIX_EVERY < n:
                        mean_ret = np.mean(c.recent_returns) if c.recent_returns else float("nan")
                        bar.set_postfix(sps=f"{sps:.0f}", fps=f"{sps * self.config.env.frame_skip:.0f}",
                                        eps=f"{epsilon.mean():.3f}", ret=f"{mean_ret:.1f}", best_x=c.best_x,
                                        flags=c.flags, refresh=False)
            if saved_step != self.step and self.start_over is None:  # starting over keeps nothing of this
                last_path = self.save()
        finally:
            if bar is not None:
                bar.close()
            try:
                self.metrics.close()
            finally:  # a log flush failing on a full disk must not leave env processes behind
                self.envs.close()
        if self.start_over is not None:
            pass  # noted when the loop asked for it; the caller starts the run over
        elif self.stop.name:
            pending = " (the evaluation it interrupted runs first on --resume)" if c.eval_pending else ""
            self.log(f"stopped by {self.stop.name} at step {self.step}; checkpoint: {last_path}{pending}")
        elif self.solved():
            checked = f" and its check on {r.solved_episodes} episodes" if r.solved_episodes else ""
            self.log(f"solved: {c.solved_streak} evaluations in a row at >= {r.solved_flag_rate:.0%} flags{checked} "
                     f"(runner.stop_when_solved); ended at step {self.step}")
        return {"step": self.step, "episodes": c.episodes, "flags": c.flags, "best_x": c.best_x,
                "checkpoint": str(last_path), "stopped_by": self.stop.name, "solved": self.solved(),
                "start_over": self.start_over, "wall_s": self.wall_s()}

    def solved(self) -> bool:
        """Whether ``runner.stop_when_solved`` has been met (then the run ends, and stays ended)."""
        return is_solved({STREAK: self.counters.solved_streak, CONFIRMED: self.counters.solved_confirmed},
                         self.config.runner)


def run_to_the_end(trainer: Trainer) -> tuple[Trainer, dict[str, Any]]:
    """``trainer.run()``, and when a castle maze asked to start over with another action set
    (``env.loop_action_set``), the run again from step 0 with it, in the same run directory:
    the same run, file for file, as one started with that action set (the Trainer seeds
    everything as it is built). Returns the trainer that finished and its result."""
    result = trainer.run()
    while result["start_over"] is not None:
        config = start_over(trainer.run_dir, trainer.config, result["start_over"], result["step"], result["wall_s"])
        trainer = Trainer(config, trainer.run_dir, progress=trainer.progress, log=trainer.log, stop=trainer.stop)
        result = trainer.run()
    return trainer, result
