"""The constants of mario-dqn: typed, frozen dataclasses, one docstring per field.

Every field carries its documentation and its allowed range in ``metadata`` so that
``config.overrides`` can validate ``--set key=value`` and the CLI can print help from
the same source. A resolved :class:`Config` is written into every run directory and
is what ``play``/``evaluate``/``--resume`` read back, so a model is never run through
a different wrapper stack than the one it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACTION_SETS: tuple[str, ...] = ("right_only", "simple", "complex")
"""Names of the reduced action sets (nes-py JoypadSpace button lists)."""

NETWORKS: tuple[str, ...] = ("nature", "small", "wide")
"""Names of the Q-network torsos (see mario_dqn.network.TORSOS)."""


def spec(default: Any, doc: str, *, low: float | None = None, high: float | None = None,
         choices: tuple[Any, ...] | None = None, low_open: bool = False) -> Any:
    """A dataclass field whose metadata holds its doc string and allowed values.

    ``low``/``high`` bound numbers (inclusive, unless ``low_open``), ``choices`` lists
    allowed values; ``config.overrides.validate`` enforces them.
    """
    meta = {"doc": doc, "low": low, "high": high, "choices": choices, "low_open": low_open}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PathsConfig:
    """Where runs are written."""

    save_dir: str = spec("save/runs", "Root directory; each run writes <save_dir>/<name>/.")


@dataclass(frozen=True)
class EnvConfig:
    """The Mario environment and its wrapper stack (see mario_dqn.environment)."""

    stages: tuple[str, ...] = spec(
        ("1-1",),
        "Stages as 'W-S' strings (world 1-8, stage 1-4); each episode samples one (seeded).",
    )
    action_set: str = spec("right_only", "Reduced action set (right_only: 5 actions, enough for 1-1 and fastest to learn).",
                             choices=ACTION_SETS)
    loop_action_set: str = spec(
        "", "Training only: the action set a run starts over with, from step 0, when a castle maze first loops "
            "Mario back for a wrong route (4-4, 7-4, 8-4; nowhere else, so elsewhere it changes nothing) and "
            "action_set is another: 4-4's second check is passed only by a route that walks Left "
            "(docs/every-stage.md), which right_only lacks. The steps before the loop are thrown away (a "
            "random agent meets 4-4's first check within a few thousand). Needs end_on_loopback. '' = off.",
        choices=("", *ACTION_SETS))
    frame_skip: int = spec(4, "Emulator frames per agent step (rewards summed, last two frames max-pooled).",
                           low=1, high=16)
    stack_size: int = spec(4, "Number of consecutive frames in an observation.", low=1, high=16)
    frame_size: int = spec(84, "Observation frames are resized to frame_size x frame_size.", low=16, high=240)
    reward_scale: float = spec(0.1, "Multiplier applied to the game's reward before the agent sees it.",
                               low=0.0, low_open=True, high=100.0)
    end_on_ceiling: bool = spec(
        True, "End an episode as a death when Mario climbs onto an underground ceiling: in 1-2 (and 4-2) "
              "it leads to the warp zone, a dead end without the Down button that the progress reward "
              "pays more for than the way to the flag.")
    end_on_loopback: bool = spec(
        True, "Training only: end an episode as a death when the game loops Mario back for a wrong route "
              "through a castle maze (4-4, 7-4, 8-4): the progress reward pays the repeated ground again, "
              "so without it a wrong route is worth as much as the way out. It fires only on the game's loop "
              "(Mario and the screen 4 pages back in a castle), so on other stages it changes nothing.")
    no_progress_steps: int = spec(
        120, "Truncate an episode when x position has not improved for this many agent steps (0 = off).",
        low=0, high=100_000)
    max_episode_steps: int = spec(
        4000, "Truncate an episode after this many agent steps (0 = off; the game clock also ends it).",
        low=0, high=1_000_000)
    noop_max: int = spec(
        0, "Training only: each training episode from the stage start begins with a random 0 to this many "
           "no-op steps the agent does not see, as every evaluation episode does (0-30, Mnih et al. 2015's "
           "no-op starts), so training meets the enemies in the phases evaluation does: without them the "
           "greedy 1-2 agent learned one timing for the first goomba and ran into it after 18+ no-ops. "
           "0 = off.", low=0, high=1000)
    restart_from_best: float = spec(
        0.0, "Training only: the probability that a training episode starts from a state along one of the "
             "env's best episodes so far on its stage (the furthest x_pos), replayed from the stage start to a "
             "uniformly drawn point up to where that episode got furthest, instead of the stage start: a "
             "Go-Explore-style return to the frontier (Ecoffet et al. 2021) for stages where epsilon-greedy "
             "exploration rarely finds the way past a spot (1-3). Evaluation always starts at the stage start. "
             "0 = off.", low=0.0, high=1.0)
    restart_keep: int = spec(4, "Best episodes kept per stage and env for restart_from_best.", low=1, high=1000)
    restart_guided: int = spec(
        0, "With restart_from_best: a restarted episode's first this many steps also follow the kept episode "
           "(the agent's action is replaced and the transition stored with the one taken), so the agent learns "
           "from taking the kept route where it leaves its own, not only from what follows (Jump-Start RL). "
           "0 = off.", low=0, high=100_000)
    restart_explore: int = spec(
        0, "With restart_from_best: after the guided steps, a restarted episode's next this many steps take "
           "random actions, each held 1-6 steps (stored with the action taken), as Go-Explore explores from "
           "the state it returns to: a way round a barrier where all kept episodes end must be found once "
           "before restarts can follow it. 0 = off.", low=0, high=100_000)
    restart_frontier: bool = spec(
        False, "With restart_from_best: draw the restart step most often where restarts succeed about half the time "
               "(reach the flag, or get further than the kept episode) instead of uniformly along the kept episode, "
               "a reverse curriculum from the flag back to the stage start (Florensa et al. 2017; Salimans and "
               "Chen 2018): restarts late along a route that always succeed, and early ones that never do, "
               "teach little.")


@dataclass(frozen=True)
class AgentConfig:
    """The DQN agent: network, learning step and exploration."""

    network: str = spec("nature", "Convolutional torso: nature (Mnih et al. 2015, 3 convs + 512 units), small "
                                  "(Mnih et al. 2013, 2 convs + 256 units, ~1/3 of the arithmetic) or wide "
                                  "(nature's convs + 1024 units, ~1.2x; for students of several stages).",
                        choices=NETWORKS)
    dueling: bool = spec(True, "Dueling head (value + advantage - mean advantage) instead of a linear Q head.")
    double: bool = spec(True, "Double DQN: the online net selects the next action, the target net evaluates it.")
    gamma: float = spec(0.95, "Discount factor per agent step.", low=0.0, high=1.0)
    loop_gamma: float = spec(
        0.0, "Training: from the first training episode that a castle maze's loop ends (env.end_on_loopback: "
             "4-4, 7-4, 8-4, nowhere else) the discount is this instead of gamma; 0 = off. A maze's route is "
             "chosen long before the check that loops it (4-4: ~70 agent steps), where gamma 0.95 leaves ~3% of "
             "the loop's cost; a longer horizon everywhere slowed 3-3 (docs/every-stage.md).",
        low=0.0, high=1.0)
    n_step: int = spec(10, "Length of the multi-step return.", low=1, high=20)
    learning_rate: float = spec(2.5e-4, "Adam learning rate (at the first update).", low=0.0, low_open=True, high=1.0)
    learning_rate_end: float = spec(2.5e-5, "Learning rate after the decay (only with learning_rate_decay_steps > 0).",
                                    low=0.0, low_open=True, high=1.0)
    learning_rate_decay_steps: int = spec(0, "Agent steps of learning (after learning_starts) over which the learning "
                                             "rate falls linearly to learning_rate_end (0 = constant).",
                                          low=0, high=1_000_000_000)
    adam_epsilon: float = spec(1.5e-4, "Adam epsilon.", low=0.0, low_open=True, high=1.0)
    batch_size: int = spec(16, "Transitions per gradient update.", low=1, high=4096)
    huber_delta: float = spec(1.0, "Huber loss threshold.", low=0.0, low_open=True, high=1e6)
    grad_clip_norm: float = spec(10.0, "Global gradient-norm clip (0 = off).", low=0.0, high=1e6)
    target_update_period: int = spec(2000, "Copy online weights to the target net every this many updates.",
                                     low=1, high=10_000_000)
    policy_average_steps: int = spec(
        25_000, "Horizon in agent steps of an exponential moving average of the online weights (Polyak-Ruppert "
           "averaging): each update moves the average train_freq / policy_average_steps of the way to the online "
           "net. When > 0 the average is the policy: evaluations, the checkpoints' model and the kept models act "
           "with it, which damps the swings of the greedy policy between checkpoints; learning and training's "
           "exploration still use the online net, so the learning itself is unchanged. The average starts at the "
           "initial weights, so for the first few horizons after learning starts it lags behind (early "
           "evaluations read low). 0 = off.",
        low=0, high=1_000_000_000)
    target_epsilon: float = spec(
        0.0, "Bootstrap on the epsilon-greedy policy's value instead of the greedy one's: the TD target's "
             "next-state value is (1 - e) Q(s', a*) + e mean_a Q(s', a) (Expected SARSA's target for an "
             "epsilon-greedy policy, van Seijen et al. 2009). Q-learning (0) values the path a perfect player "
             "takes even where one random press is fatal; e > 0 is meant to make the greedy policy prefer a route "
             "that survives random presses (Sutton and Barto's cliff walk), which evaluation with --epsilon "
             "measures; on 1-4, e = 0.05 gave no gain (docs/every-stage.md). 0 = the greedy target.",
        low=0.0, high=1.0)
    anchor_weight: float = spec(
        0.0, "Weight of a large-margin loss (DQfD, Hester et al. 2018) that keeps the online net's greedy action "
             "where the weight average's is: max_a [Q(s, a) + m (a != a_avg)] - Q(s, a_avg), on every replayed "
             "state. For fine-tuning an agent that already plays (train --init-from), with a long "
             "policy_average_steps the average stays near the agent the run started from while the TD loss "
             "learns the values; the margin only ranks actions, so the values move freely. Needs "
             "policy_average_steps > 0. 0 = off.", low=0.0, high=1000.0)
    anchor_margin: float = spec(0.8, "Margin m of anchor_weight's loss: by how much the anchored action must lead (in "
                                     "Q units; DQfD's 0.8).", low=0.0, high=1000.0)
    target_tau: float = spec(1.0, "Target update rate: 1.0 = hard copy, < 1 = Polyak averaging each period.",
                             low=0.0, low_open=True, high=1.0)
    train_freq: int = spec(4, "One update per this many agent steps (summed over envs).", low=1, high=1000)
    learning_starts: int = spec(10_000, "Agent steps collected before the first update.", low=0, high=100_000_000)
    epsilon_start: float = spec(1.0, "Exploration rate at step 0.", low=0.0, high=1.0)
    epsilon_end: float = spec(0.05, "Exploration floor.", low=0.0, high=1.0)
    epsilon_decay_steps: int = spec(20_000, "Agent steps over which epsilon falls linearly to its floor.",
                                    low=1, high=1_000_000_000)


@dataclass(frozen=True)
class ReplayConfig:
    """The replay memory."""

    capacity: int = spec(100_000, "Transitions kept (frames are stored once: ~7 KB each at 84x84).",
                         low=100, high=100_000_000)
    prioritized: bool = spec(True, "Proportional prioritized replay instead of uniform sampling.")
    alpha: float = spec(0.6, "Priority exponent (prioritized only).", low=0.0, high=1.0)
    beta_start: float = spec(0.4, "Initial importance-sampling exponent, annealed to 1.", low=0.0, high=1.0)
    beta_steps: int = spec(1_000_000, "Agent steps over which beta anneals to 1.", low=1, high=1_000_000_000)
    priority_epsilon: float = spec(1e-6, "Added to |TD error| so no priority is zero.",
                                   low=0.0, low_open=True, high=1.0)


@dataclass(frozen=True)
class RunnerConfig:
    """The training loop: length, parallelism, evaluation, checkpoints, logging."""

    total_steps: int = spec(1_500_000, "Total agent steps of the run (summed over envs).", low=1, high=10_000_000_000)
    num_envs: int = spec(4, "Environments stepped in parallel (4 measured fastest on 2 cores: make bench).",
                         low=1, high=64)
    seed: int = spec(0, "Seed of every random generator in the run.", low=0, high=2**31 - 1)
    eval_every: int = spec(25_000, "Agent steps between evaluations (0 = never).", low=0, high=10_000_000_000)
    eval_episodes: int = spec(5, "Episodes per evaluation; with several stages, per stage (each stage is "
                                 "evaluated on its own, with the same seeds).", low=1, high=1000)
    eval_epsilon: float = spec(0.0, "Exploration rate during evaluation.", low=0.0, high=1.0)
    checkpoint_every: int = spec(25_000, "Agent steps between checkpoints.", low=1, high=10_000_000_000)
    keep_checkpoints: int = spec(3, "Complete checkpoints kept (older ones are deleted).", low=1, high=1000)
    save_replay: bool = spec(True, "Store the replay memory in the latest checkpoint (exact resume).")
    init_from: str = spec("", "Start a new run from this agent's policy weights (a run directory, checkpoint or "
                               "shipped agent; '' = fresh weights): fine-tuning. The optimizer, replay and counters "
                               "start fresh; the network settings must match the agent's.")
    keep_models: bool = spec(True, "Also keep each checkpoint's policy model in <run>/models/ (weights only, a few "
                                   "MB each), for benchmarks/time_to_solve.py.")
    stop_when_solved: int = spec(
        0, "End the run once this many evaluations in a row reach runner.solved_flag_rate flags (each "
           "stage's, with several): a campaign's trial stops when its stage is learned instead of running "
           "to total_steps; resuming a solved run does nothing. The model to ship is still picked from the "
           "kept models (python -m mario_dqn.pick). 0 = never.", low=0, high=1000)
    solved_flag_rate: float = spec(0.8, "The flag rate an evaluation needs to count for runner.stop_when_solved.",
                                   low=0.0, high=1.0)
    solved_episodes: int = spec(
        20, "Once runner.stop_when_solved evaluations in a row reach the rate, one more evaluation of this many "
            "episodes on seeds 0..N-1 (the harness's seeds, those of README's stage table) must reach it too, or "
            "the streak starts over and training goes on: the in-training evaluations replay the same few seeds, "
            "which a policy can pass three times in a row while the harness reads far less. 0 = no check.",
        low=0, high=1000)


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration of a run."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)


SECTIONS: tuple[str, ...] = ("paths", "env", "agent", "replay", "runner")
"""Section names of :class:`Config`, in order."""
