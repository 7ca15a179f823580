"""Policy distillation: one network for several stages, taught by one agent per stage.

Why: training one DQN on several stages with RL shares its episodes between them, so it
needs about the sum of the stages' own budgets (issue 19: the World 1 run had 1-4 at
100% and the other three at 0% after ~0.5M steps). Agents that already clear each stage
can teach one student network instead. Policy distillation (Rusu et al. 2016) trains the
student by supervised learning on the teachers' Q-values: for a state of stage s, the
cross-entropy between softmax(Q_teacher(s) / T) and softmax(Q_student / T), with a low
temperature T so that what is copied is mostly the teacher's ranking of actions, and
one network holds several teachers' policies (their multi-task result on Atari).

States come from playing, DAgger style (Ross et al. 2011): in the first round the teachers
play their own stages; in each later round the student plays and the teachers label
the states it reaches, so the student also learns what to do where its own mistakes
take it, which states of the teachers alone never show. All states gathered so far are
trained on in each round. The episodes are :func:`mario_dqn.evaluation.evaluate`'s (no-op
starts, epsilon-greedy with ``epsilon``) on seeds of their own, apart from the
evaluation seeds (0-19, 1000-1019 and training's).

The student has the teachers' network and env settings (they must agree), so what comes
out is an ordinary agent: ``evaluate``, ``play`` and ``package_pretrained`` take it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import config as C
from mario_dqn.distill_rounds import RoundStore
from mario_dqn.distill_settings import DistillError, DistillSettings
from mario_dqn.evaluation import EVAL_SEED_OFFSET, EvaluationStopped, evaluate, evaluate_each_stage

COLLECT_SEED = 2_000_000
"""Episode seeds of the states played for distillation: ``COLLECT_SEED + 10_000 * round``
on, apart from every evaluation's seeds."""

SHARED_ENV_FIELDS = ("action_set", "frame_skip", "stack_size", "frame_size", "reward_scale",
                     "no_progress_steps", "max_episode_steps")
"""Env settings every teacher must share: they make the observations and actions the
student sees and takes (the training-only fields, no-op starts and restarts, may differ)."""

SHARED_AGENT_FIELDS = ("network", "dueling")
"""Network settings every teacher must share: the student is built like them."""


class DistillStopped(Exception):
    """A stop signal arrived while the student was being trained (nothing is written)."""


def student_config(teachers: dict[str, C.Config], seed: int, network: str | None = None) -> C.Config:
    """The student's config: the first teacher's, on all the teachers' stages, with the
    torso ``network`` when given (None: the teachers').

    ``teachers`` maps each stage ('W-S') to its teacher's config. ``end_on_ceiling`` is on
    when any teacher had it: it changes nothing where no ceiling is reachable and is how
    the teacher that had it was trained and measured.
    """
    if not teachers:
        raise DistillError("distillation needs at least one teacher")
    configs = list(teachers.values())
    first = configs[0]
    for stage, config in teachers.items():
        for section, names in (("env", SHARED_ENV_FIELDS), ("agent", SHARED_AGENT_FIELDS)):
            for name in names:
                mine, theirs = getattr(getattr(config, section), name), getattr(getattr(first, section), name)
                if mine != theirs:
                    raise DistillError(f"teachers disagree on {section}.{name}: {theirs!r} for "
                                       f"{next(iter(teachers))}, {mine!r} for {stage}")
    return C.replace(first, {
        "env": {"stages": tuple(teachers), "end_on_ceiling": any(c.env.end_on_ceiling for c in configs),
                "noop_max": 0, "restart_from_best": 0.0},
        "agent": {"network": network or first.agent.network},
        "runner": {"seed": int(seed)},
    })


def soft_targets(teacher_q: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(Q / T) per row, computed stably (the teacher's side of the loss)."""
    z = np.asarray(teacher_q, np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def distillation_loss(temperature: float) -> Callable[[Any, Any], Any]:
    """Keras loss: cross-entropy of softmax(student Q / T) against the teacher's soft
    targets; it differs from the KL divergence by the teachers' entropy, a constant."""
    import keras

    def loss(targets: Any, q: Any) -> Any:
        return keras.losses.categorical_crossentropy(targets, q / temperature, from_logits=True)

    return loss


def play_states(actor: Any, config: C.Config, episodes: int, seed: int, epsilon: float,
                stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """The observations in which ``actor`` chose an action (forced no-op starts left
    out) over ``episodes`` evaluation episodes of ``config``'s stage, the actor's
    Q-values there (its policy network's) and the episodes' rows."""
    states: list[np.ndarray] = []
    values: list[np.ndarray] = []

    def keep(view: Any) -> None:
        if view.action is not None and not view.noop:
            states.append(view.obs)
            values.append(view.q_values)

    result = evaluate(actor, config, episodes, seed, epsilon, stop=stop, on_step=keep, frames=False)
    return np.stack(states), np.stack(values), result["per_episode"]


@dataclass(frozen=True)
class PlayJob:
    """Episodes to play for states, in a worker process: who plays (config and policy
    weights) and :func:`play_states`'s arguments."""

    config_json: str
    weights: list[np.ndarray] | str
    """The policy weights, or the path of an ``.npz`` file holding them (what a worker gets)."""
    episodes: int
    seed: int
    epsilon: float


def _play_job(job: PlayJob) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """:func:`play_states` in a worker: the player rebuilt from its config and weights."""
    from mario_dqn.build import build_agent
    from mario_dqn.checkpoint import load_arrays
    from mario_dqn.environment import ACTIONS

    config = C.from_json(job.config_json)
    agent = build_agent(config, len(ACTIONS[config.env.action_set]))
    agent.load_policy(load_arrays(Path(job.weights)) if isinstance(job.weights, str) else job.weights)
    return play_states(agent, config, job.episodes, job.seed, job.epsilon)


def _weights_by_file(jobs: list[PlayJob], folder: Path) -> list[PlayJob]:
    """``jobs`` with their weights written to ``folder``, once per list, and named by path.

    Why: a job goes to its worker through a pipe, written by a thread of the pool. Sent
    inline, a job's weights (megabytes) keep that thread mid-write until a worker reads
    them, and a stop that kills workers still starting up leaves it writing into a pipe
    nobody reads; Python 3.13.0's pool handles that error under a lock its shutdown
    holds (CPython gh-125451, fixed in 3.13.1). A path fits the pipe at once.
    """
    paths: dict[int, str] = {}
    sent = []
    for job in jobs:
        if isinstance(job.weights, str):
            sent.append(job)
            continue
        if id(job.weights) not in paths:
            path = folder / f"weights-{len(paths)}.npz"
            np.savez(path, *job.weights)  # checkpoint.load_arrays reads them back
            paths[id(job.weights)] = str(path)
        sent.append(PlayJob(job.config_json, paths[id(job.weights)], job.episodes, job.seed, job.epsilon))
    return sent


def _worker_init() -> None:
    from mario_dqn import signals

    signals.exit_with_parent()  # a distillation killed outright must not leave its players playing
    signals.ignore_in_worker()  # the main process owns stopping (see mario_dqn.signals)


def play_all(jobs: list[PlayJob], workers: int,
             stop: Callable[[], bool] | None = None) -> list[tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]]:
    """:func:`play_states` of every job, in ``workers`` processes at once (in this one
    when 1): the emulator takes most of the time and runs on one core per process. The
    results are the same either way (each job's episodes depend only on its seeds).
    A stop (``stop()`` true) ends the workers and raises :class:`DistillStopped`.

    The pool is gone, threads and processes, before this returns or raises. A Ctrl-C while
    the players were starting once printed ``OSError: [Errno 9] Bad file descriptor``
    after distill's stop line; not traced to its line, but Python 3.13.0's pool has a
    race of that kind (CPython gh-125451): at exit it wakes its manager thread without the
    lock under which that thread closes the pipe, and the old stop path left the thread
    closing it while the interpreter exited."""
    import concurrent.futures as cf
    import multiprocessing
    import tempfile

    from mario_dqn import signals

    if workers <= 1:
        results = []
        for job in jobs:
            if stop is not None and stop():
                raise DistillStopped()
            try:
                results.append(_play_job(job))
            except EvaluationStopped:
                raise DistillStopped() from None
        return results
    with tempfile.TemporaryDirectory(prefix="mario-dqn-players-") as folder:
        sent = _weights_by_file(jobs, Path(folder))
        pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_worker_init)
        futures: list[cf.Future[Any]] = []
        try:
            with signals.blocked_while_spawning():
                futures = [pool.submit(_play_job, job) for job in sent]
            while True:
                done, pending = cf.wait(futures, timeout=0.2)
                if not pending:
                    return [future.result() for future in futures]
                if stop is not None and stop():
                    raise DistillStopped()
        finally:
            if not all(future.done() for future in futures):  # stopped: the episodes being played go too
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.kill()
            pool.shutdown(wait=True, cancel_futures=True)  # idle or killed workers: quick


def label(teacher: Any, states: np.ndarray, chunk: int = 256) -> np.ndarray:
    """The teacher's Q-values (N, A) of ``states`` with its policy network."""
    return np.concatenate([teacher.q_values(states[i:i + chunk], policy=True)
                           for i in range(0, len(states), chunk)])


def balancing_weights(groups: np.ndarray) -> np.ndarray:
    """Per-state loss weights under which every group (stage) weighs the same in total,
    with a mean of 1: ``N / (G * n_g)`` for a state of group g with n_g states.

    Why: a stage where the player dies early gives few states (the student's 1-3 gave
    a sixth of 1-1's), yet it is where the student most needs teaching.
    """
    values, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return (len(groups) / (len(values) * counts[inverse])).astype(np.float32)


class Stacked:
    """Arrays read as one along their first axis, without copying them into one.

    Why: the states of every round are trained on in each round, and joining them with
    ``np.concatenate`` held a second copy of all of them (84x84x4 bytes a state, some
    26,000 a round for World 1's four stages), twice the memory a distillation of many
    stages needs. Indexing with sorted rows gives what the joined array would.
    """

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0, *(len(part) for part in parts)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """The rows (sorted, as :func:`fit` takes them) of the arrays joined."""
        part = np.searchsorted(self.offsets, rows, side="right") - 1
        return np.concatenate([self.parts[k][rows[part == k] - self.offsets[k]] for k in np.unique(part)])


def fit(model: Any, states: np.ndarray | Stacked, teacher_q: np.ndarray, settings: DistillSettings,
        optimizer: Any, on_batch: Callable[[], None] | None = None,
        stop: Callable[[], bool] | None = None, weights: np.ndarray | None = None) -> float:
    """``settings.epochs`` passes of the distillation loss over (states, teacher_q) in
    shuffled minibatches (``states``: an array or a :class:`Stacked` of them), each
    state's loss times its ``weights`` (default 1); the mean loss of the last pass.
    :class:`DistillStopped` when ``stop()`` turns true (asked before each minibatch)."""
    import keras
    import tensorflow as tf

    targets = soft_targets(teacher_q, settings.temperature)
    loss_fn = distillation_loss(settings.temperature)

    @tf.function(autograph=False, reduce_retracing=True)
    def step(obs: tf.Tensor, target: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(weight * loss_fn(target, model(obs, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    weights = np.ones(len(states), np.float32) if weights is None else np.asarray(weights, np.float32)
    rng = np.random.default_rng([settings.seed, len(states)])
    losses: list[float] = []
    for _ in range(settings.epochs):
        order = rng.permutation(len(states))
        losses = []
        for i in range(0, len(order), settings.batch_size):
            if stop is not None and stop():
                raise DistillStopped()
            rows = np.sort(order[i:i + settings.batch_size])
            losses.append(float(step(states[rows], targets[rows], weights[rows])))
            if on_batch is not None:
                on_batch()
    return float(np.mean(losses)) if losses else float("nan")


def student_optimizer(settings: DistillSettings) -> Any:
    """The student's Adam; with ``settings.average_steps`` N > 0 it also keeps a moving
    average of the weights it trains, after every step ``average <- m * average + (1 - m) *
    weights`` with m = 1 - 1/N (Keras' ``use_ema``; the first step sets the average to the
    weights, so the random initial weights never weigh in). The average is kept beside
    the weights and changes none of them: the training is the same with or without it."""
    import keras

    if settings.average_steps == 0:
        return keras.optimizers.Adam(learning_rate=settings.learning_rate)
    kind = _warmup_adam() if settings.average_warmup else keras.optimizers.Adam
    return kind(learning_rate=settings.learning_rate, use_ema=True, ema_momentum=1.0 - 1.0 / settings.average_steps)


def warmup_momentum(step: int, momentum: float) -> float:
    """The average's momentum at gradient step ``step`` (0 first) with a warm-up: 0 at
    the first step (the average becomes the weights, as Keras' use_ema does), then
    ``min(momentum, (1 + step) / (10 + step))`` (TensorFlow 1's ExponentialMovingAverage
    with ``num_updates``). The graph in :func:`_warmup_adam` computes the same."""
    return 0.0 if step == 0 else min(momentum, (1.0 + step) / (10.0 + step))


def _warmup_adam() -> type:
    """Keras' Adam with its use_ema average warmed up by :func:`warmup_momentum`. Keras
    3 has no warm-up, and its average is a private method's work: this overrides that
    one method (keras pinned in requirements.txt; tests/test_distill.py checks the
    average against hand-computed values, so a Keras that renames it fails there)."""
    import keras
    from keras import ops

    class WarmupAdam(keras.optimizers.Adam):
        def _update_model_variables_moving_average(self, trainable_variables: list[Any]) -> None:
            step = ops.cast(self.iterations, "float32")
            warm = ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))
            momentum = ops.where(ops.equal(self.iterations, 0), 0.0, warm)
            for var, average in zip(trainable_variables, self._model_variables_moving_average):
                if average is not None:
                    m = ops.cast(momentum, var.dtype)
                    average.assign(ops.add(ops.multiply(m, average), ops.multiply(ops.subtract(1, m), var)))

    return WarmupAdam


def averaged_weights(model: Any, optimizer: Any) -> list[np.ndarray]:
    """``model``'s weights with its trainable ones replaced by ``optimizer``'s moving
    average of them (a :func:`student_optimizer` with ``average_steps`` > 0 that has
    taken a step); ``model`` keeps its own weights. Keras offers the average only by
    writing it into the model (``finalize_variable_values``), so they are put back after."""
    own = model.get_weights()
    optimizer.finalize_variable_values(model.trainable_variables)
    average = model.get_weights()
    model.set_weights(own)
    return average


def recorded_settings(settings: DistillSettings) -> dict[str, Any]:
    """``settings`` as the record keeps them: every field, except ``average_steps``,
    ``average_warmup`` and ``network`` when off (None: the teachers' torso), so a
    distillation without them records what it did before the options."""
    recorded = asdict(settings)
    for name in ("average_steps", "average_warmup", "network"):
        if not recorded[name]:
            del recorded[name]
    return recorded


def round_score(evaluation: dict[str, dict[str, float]]) -> tuple[float, float, float]:
    """How good a round's student is, from its greedy evaluation per stage: its worst
    stage's flag rate first (the one agent is meant to clear every stage), then the mean
    flag rate, then the mean x_pos over the stages; larger is better.

    Why keep a round at all: the student's policy swings between rounds as a DQN's does
    between checkpoints (one seed of the first World 1 distillations went from 100 / 80 /
    100 / 60% after round 3 to 80 / 0 / 0 / 100% after round 5), so the last round is
    not reliably the best.
    """
    rates = [part["flag_rate"] for part in evaluation.values()]
    return (min(rates), float(np.mean(rates)), float(np.mean([part["mean_x_pos"] for part in evaluation.values()])))


def distill(teachers: dict[str, tuple[C.Config, Any]], settings: DistillSettings,
            log: Callable[[str], None] = print, stop: Callable[[], bool] | None = None,
            progress: Callable[[int], Callable[[], None]] | None = None,
            store: RoundStore | None = None,
            each_round: Callable[[Any, C.Config, dict[str, Any]], None] | None = None,
            ) -> tuple[Any, C.Config, dict[str, Any]]:
    """Distil ``teachers`` (stage -> (config, agent)) into one student agent.

    Returns the student, its config and a record of the rounds (states per stage, the
    last pass's loss, the greedy evaluation per stage, wall seconds) and of the round
    kept (``kept_round``: the best by :func:`round_score`, a later round on a tie; the
    last when there is no evaluation). ``progress(batches)``
    may return a callback called after each minibatch (a progress bar).

    With ``settings.average_steps`` > 0 the student is the moving average of the trained
    weights (:func:`student_optimizer`): it plays the later rounds, is evaluated, kept
    and written, while training goes on from the trained weights. It plays, too, because
    DAgger is to teach what to do in the states that the policy being judged reaches, and
    that policy is the average, not the trained weights. The average carries across
    rounds (one optimizer for all of them) because the swings it is meant to damp are
    between rounds; restarted each round it would hold one round's steps only.

    With a ``store`` (:class:`mario_dqn.distill_rounds.RoundStore`), each finished round
    is written to it; when it already holds rounds (the caller has checked that they are
    this distillation's), it goes on after the last of them with their states, weights
    and optimizer, to the student it would have given without the stop.

    ``each_round(student, config, record)``, when given, is called after each round with
    the student as that round left it (playing with that round's policy) and the record of
    the rounds so far, ``kept_round`` being this one: what ``distill --keep-rounds`` writes,
    so that the round choice, made on a few evaluation episodes, can be checked on more. It
    is called before the round reaches the store: a stop in between repeats the round on
    resume (to the same student) and calls it again.
    """
    from mario_dqn.build import build_agent, seed_everything
    from mario_dqn.environment import ACTIONS

    seed_everything(settings.seed)
    config = student_config({stage: cfg for stage, (cfg, _) in teachers.items()}, settings.seed, settings.network)
    student = build_agent(config, len(ACTIONS[config.env.action_set]))
    optimizer = student_optimizer(settings)
    trained: list[np.ndarray] | None = None  # the trained weights while the student acts with their average
    started = time.monotonic()
    states: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    groups: list[np.ndarray] = []  # the stage (its index) of each state
    rounds: list[dict[str, Any]] = []
    kept: tuple[tuple[float, ...], int, list[np.ndarray]] | None = None  # score, round, weights
    if store is not None and store.exists():
        saved = store.load()
        rounds, states, labels, groups, kept = saved.rounds, saved.states, saved.labels, saved.groups, saved.kept
        student.online.set_weights(saved.online)
        optimizer.build(student.online.trainable_variables)
        for variable, value in zip(optimizer.variables, saved.optimizer, strict=True):
            variable.assign(value)
        student.load_policy(saved.policy)  # every network acts with it, as after that round
        trained = saved.online if settings.average_steps > 0 else None
        started -= saved.wall_s
        log(f"continuing after round {len(rounds)}/{settings.rounds} ({store.directory})")
    elif store is not None:
        store.remove()  # what a stop before the end of round 1 left (never a finished round)
    for r in range(len(rounds), settings.rounds):
        first_new = len(states)  # this round's states start here
        played: dict[str, Any] = {}
        jobs, owners = [], []
        weights_of: dict[int, list[np.ndarray]] = {}  # one copy per player: the student plays every stage
        greedy = (settings.episodes + 1) // 2
        for stage, (teacher_config, teacher) in teachers.items():
            actor = teacher if r == 0 else student
            network = (teacher_config if r == 0 else config).agent.network  # the player's own torso
            stage_json = C.to_json(C.replace(config, {"env": {"stages": (stage,)}, "agent": {"network": network}}))
            if id(actor) not in weights_of:
                weights_of[id(actor)] = actor.policy.get_weights()
            weights = weights_of[id(actor)]
            seed = COLLECT_SEED + 10_000 * r
            for count, epsilon, first in ((greedy, 0.0, seed), (settings.episodes - greedy, settings.epsilon,
                                                                 seed + greedy)):
                if count > 0:
                    jobs.append(PlayJob(stage_json, weights, count, first, epsilon))
                    owners.append(stage)
        for stage, (obs, q, rows) in zip(owners, play_all(jobs, settings.workers, stop)):
            teacher = teachers[stage][1]
            states.append(obs)
            labels.append(q if r == 0 else label(teacher, obs))  # round 1: the teacher played, q is its own
            groups.append(np.full(len(obs), list(teachers).index(stage)))
            part = played.setdefault(stage, {"states": 0, "rows": []})
            part["states"] += len(obs)
            part["rows"] += rows
        for stage, part in played.items():
            flags = [row["flag"] for row in part.pop("rows")]
            part.update(flag_rate=float(np.mean(flags)), greedy_flag_rate=float(np.mean(flags[:greedy])))
            if flags[greedy:]:  # the player's robustness to random presses, measured for free (docs/world-1.md)
                part["epsilon_flag_rate"] = float(np.mean(flags[greedy:]))
            log(f"round {r + 1}/{settings.rounds}, {stage}: {'teacher' if r == 0 else 'student'} played "
                f"{settings.episodes} episodes (greedy flags {part['greedy_flag_rate']:.0%}"
                + (f", with epsilon {settings.epsilon:g} {part['epsilon_flag_rate']:.0%}" if flags[greedy:] else "")
                + f"), {part['states']:,} states")
        all_states, all_labels = Stacked(states), np.concatenate(labels)  # the states are not copied
        batches = settings.epochs * -(-len(all_states) // settings.batch_size)
        if trained is not None:
            student.online.set_weights(trained)  # train on from the trained weights, not their average
        loss = fit(student.online, all_states, all_labels, settings, optimizer,
                   progress(batches) if progress else None, stop, balancing_weights(np.concatenate(groups)))
        if settings.average_steps > 0:
            trained = student.online.get_weights()
            student.load_policy(averaged_weights(student.online, optimizer))  # every network acts with it
        else:
            student.load_policy(student.online.get_weights())  # every network of the student acts with them
        row: dict[str, Any] = {"round": r + 1, "played": played, "states": len(all_states), "loss": loss}
        if settings.eval_episodes > 0:
            result = evaluate_each_stage(student, config, settings.eval_episodes,
                                         settings.seed + EVAL_SEED_OFFSET, stop=stop)
            row["eval"] = {stage: {"flag_rate": part["flag_rate"], "mean_x_pos": part["mean_x_pos"]}
                           for stage, part in result["per_stage"].items()}
            log(f"round {r + 1}: loss {loss:.4f}; greedy "
                + ", ".join(f"{s} {p['flag_rate']:.0%} (x {p['mean_x_pos']:.0f})" for s, p in row["eval"].items()))
            score = round_score(row["eval"])
            if kept is None or score >= kept[0]:
                kept = (score, r + 1, [w.copy() for w in student.online.get_weights()])
        else:
            log(f"round {r + 1}: loss {loss:.4f}")
        row["wall_s"] = round(time.monotonic() - started, 1)
        rounds.append(row)
        if each_round is not None:
            each_round(student, config, {"settings": recorded_settings(settings), "rounds": list(rounds),
                                         "kept_round": r + 1, "wall_s": row["wall_s"]})
        if store is not None:
            new = [np.concatenate(part[first_new:]) for part in (states, labels, groups)]
            states[first_new:], labels[first_new:], groups[first_new:] = new[:1], new[1:2], new[2:]  # one array each
            store.save(rounds, *new, online=student.online.get_weights() if trained is None else trained,
                       policy=student.policy.get_weights(), optimizer=[np.asarray(v) for v in optimizer.variables],
                       kept=kept, wall_s=row["wall_s"])
    kept_round = kept[1] if kept is not None else len(rounds)
    if kept is not None:
        student.load_policy(kept[2])  # every network of the student, the online one too
        log(f"kept round {kept_round} (worst stage {kept[0][0]:.0%}, mean {kept[0][1]:.0%} on its greedy evaluation)")
    record = {"settings": recorded_settings(settings), "rounds": rounds, "kept_round": kept_round,
              "wall_s": round(time.monotonic() - started, 1)}
    return student, config, record


def reproduce_command(out: str, record: dict[str, Any], teachers: dict[str, str] | None = None) -> str:
    """The ``distill`` command line that makes this student again: its stages, each
    teacher (``teachers`` overrides the recorded paths, e.g. a teacher taken out of git
    history) and every setting the command has an option for. ``batch_size`` has none:
    a record with another batch size than :class:`DistillSettings`' cannot be remade
    by this command line alone. ``--average-steps``, ``--average-warmup`` and ``--network``
    are given only when on, so the line of a distillation without them reads as before the
    options."""
    settings = {**asdict(DistillSettings()), **record["settings"]}
    paths = {**record["teachers"], **(teachers or {})}
    parts = ["python main.py distill", out, "--stages", ",".join(paths)]
    parts += [f"--teacher {stage}={path}" for stage, path in paths.items()]
    for name in ("rounds", "episodes", "epochs", "epsilon", "temperature", "learning_rate", "eval_episodes",
                 "seed", "workers"):
        parts.append(f"--{name.replace('_', '-')} {settings[name]}")
    if settings["average_steps"]:
        parts.append(f"--average-steps {settings['average_steps']}")
    if settings["average_warmup"]:
        parts.append("--average-warmup")
    if settings.get("network"):
        parts.append(f"--network {settings['network']}")
    return " ".join(parts)


def check_out(out: Path, force: bool) -> None:
    """Refuse an OUT that exists unless ``force``, and with ``force`` one that is not an
    agent directory (a file, or a directory with files but no ``model.keras``): --force
    deletes a directory tree, so it only ever replaces a student. Checked before the
    distillation starts, not after an hour of it."""
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise DistillError(f"{out} exists; pass --force to replace it")
    if out.is_symlink() or not out.is_dir() or (any(out.iterdir()) and not (out / "model.keras").is_file()):
        raise DistillError(f"refusing to replace {out} with --force: it is not an agent directory (no model.keras)")


def replace_out(out: Path) -> None:
    """Remove the OUT that :func:`check_out` let ``--force`` replace, just before writing it."""
    import shutil

    if out.exists():
        try:
            shutil.rmtree(out)
        except OSError as err:
            raise DistillError(f"cannot remove {err.filename or out}: {err.strerror or err}") from None


ROUND_DIR = "round-{:03d}"
"""A round's student in ``distill --keep-rounds``' OUT.rounds directory."""


def check_rounds_out(directory: Path, continuing: bool, force: bool) -> None:
    """Prepare OUT.rounds for ``--keep-rounds``: a distillation that continues writes on
    into it; a new one refuses it when it exists, unless ``force``, which removes the
    rounds' students in it and refuses (like :func:`check_out`) a directory holding
    anything else. Checked before the distillation starts."""
    import re
    import shutil

    if continuing or not (directory.exists() or directory.is_symlink()):
        return
    if not force:
        raise DistillError(f"{directory} exists; pass --force to replace it")
    children = list(directory.iterdir()) if directory.is_dir() and not directory.is_symlink() else None
    if children is None or any(not re.fullmatch(r"round-\d{3}", c.name) or not (c / "model.keras").is_file()
                               for c in children):
        raise DistillError(f"refusing to replace {directory} with --force: it holds more than rounds' students")
    try:
        shutil.rmtree(directory)
    except OSError as err:
        raise DistillError(f"cannot remove {err.filename or directory}: {err.strerror or err}") from None


def write_round(directory: Path, student: Any, config: C.Config, record: dict[str, Any],
                teachers: dict[str, str], sources: dict[str, dict[str, Any]]) -> Path:
    """Write one round's student (``record['kept_round']``) into ``directory`` as an agent
    directory like OUT (:func:`save_student`), replacing the one a stopped distillation
    wrote for the same round (a resumed round gives the same student)."""
    import shutil

    path = Path(directory) / ROUND_DIR.format(record["kept_round"])
    shutil.rmtree(path, ignore_errors=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_student(path, student, config, record, teachers, sources)
    except OSError as err:
        raise DistillError(f"cannot write {path}: {err.strerror or err}") from None


def save_student(directory: Path, student: Any, config: C.Config, record: dict[str, Any],
                 teachers: dict[str, str], sources: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write the student as a shipped-agent directory (``checkpoint.save_policy``); its
    ``state.json`` says it was distilled, from which teachers (``teachers``: stage -> the
    path as the record keeps it; ``sources``: stage -> :func:`checkpoint.model_source`, taken from
    ``teachers`` here when not given), and how the rounds went."""
    from mario_dqn import checkpoint as ckpt

    if sources is None:
        sources = {stage: ckpt.model_source(_existing(path), path) for stage, path in teachers.items()}
    state = {"step": 0, "wall_s": record["wall_s"], "episodes": 0, "flags": 0,
             "distilled": {"teachers": teachers, "teacher_sources": sources, **record}}
    return ckpt.save_policy(directory, student, state, config)


def _existing(path: str) -> Path:
    """A recorded teacher path on this machine: as given (from the working directory),
    else inside the repository (records keep paths in it relative to it)."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    return Path(__file__).resolve().parent.parent / given
