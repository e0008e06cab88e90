"""The synchronous, Qt-free facade a GUI or CLI drives: one model, one tokenizer, one corpus, one generation,
one training run.

Every method returns frozen dataclasses of numpy arrays and plain values (gptviz.engine.views), so a GUI
worker thread can hand the results to the GUI thread without sharing a tensor. Nothing here blocks on
anything but the computation asked for; a GUI makes training "live" by calling `train_step()` repeatedly
between other commands. Following a run directory and reading a checkpoint's history belong to
gptviz.engine.run_follow, process memory to gptviz.engine.memory, the panes' inspection to
gptviz.engine.session_inspection and the questions of why to gptviz.engine.session_causal; this class keeps the
state and delegates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gptviz.config import GPTConfig, preset
from gptviz.data import BUILTIN, SlidingWindows, read_corpus_ids
from gptviz.engine.devices import resolve_device
from gptviz.engine.generator import Generator
from gptviz.engine.memory import check_fits
from gptviz.engine.path_kind import checkpoint_in
from gptviz.engine.run_follow import RunFollower, history_dir_for, read_history
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.engine.session_causal import CausalTools
from gptviz.engine.session_inspection import InspectionTools
from gptviz.engine.views import (
    DEFAULT_PROMPT,
    CandidateRow,
    CorpusInfo,
    FollowBatch,
    GenerationView,
    ModelInfo,
    TokensView,
    TrainingUpdate,
    WindowsView,
)
from gptviz.errors import ConfigError, DataError, GptvizError
from gptviz.model.gpt import GPTModel
from gptviz.resources import DEMO_MODEL_DIR
from gptviz.tokenizer import Tokenizer, default_tokenizer

if TYPE_CHECKING:  # loaded when first used: the trainer and the inspection rooms are not needed to start
    from gptviz.engine.ablation_spec import Ablation
    from gptviz.engine.live_inspection import LiveInspection
    from gptviz.engine.train_settings import TrainSettings
    from gptviz.engine.trainer import Trainer

MAX_WINDOW_ROWS = 64  # windows one `windows()` call returns at most: a view shows a page, not the corpus


# -------------------------------------------------------------------------------------------- helpers


def model_bytes(model: GPTModel) -> int:
    seen: set[int] = set()
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
    return total


# -------------------------------------------------------------------------------------------- session


class Session(InspectionTools, CausalTools):
    """One model + tokenizer + corpus + generation (+ training), driven one call at a time.

    `model` may be injected (tests, embedding); otherwise the bundled demo checkpoint is loaded, and a freshly
    initialised tiny model stands in (with `info.note` saying so) when the demo is not there.
    """

    def __init__(
        self,
        model: GPTModel | None = None,
        tokenizer: Tokenizer | None = None,
        *,
        device: str = "cpu",
        corpus: str | os.PathLike | None = BUILTIN,
        prompt: str = DEFAULT_PROMPT,
        sampling: SamplingSettings | None = None,
        demo_dir: str | os.PathLike = DEMO_MODEL_DIR,
        seed: int = 0,
    ) -> None:
        self.tokenizer = tokenizer or default_tokenizer()
        self.device = resolve_device(device)
        self.seed = seed
        self.sampling = sampling or SamplingSettings(temperature=0.8, top_k=50, top_p=0.95, seed=seed)
        self.prompt = prompt
        self._corpus_ids = torch.zeros(0, dtype=torch.long)  # (N,)
        self.corpus: CorpusInfo | None = None
        self.generator: Generator | None = None
        self.trainer: Trainer | None = None  # while a run exists
        if model is not None:
            self._set_model(model, "injected", "", getattr(model.cfg, "name", "model"))
        else:
            self._load_default(Path(demo_dir))
        if corpus is not None:
            self.load_corpus(corpus)

    # ------------------------------------------------------------------------------------------ models

    def _load_default(self, demo_dir: Path) -> None:
        from gptviz.engine.checkpoint import load_checkpoint

        if (demo_dir / "config.json").is_file():
            try:
                model, meta = load_checkpoint(demo_dir, self.device)
                self._set_model(model, "demo", str(demo_dir), str(meta.get("name") or "demo"))
                self._set_history(demo_dir, meta)
                return
            except GptvizError as exc:
                note = f"demo model unreadable ({exc}): using a freshly initialised tiny model"
        else:
            note = "demo model not found: using a freshly initialised (untrained) tiny model"
        torch.manual_seed(self.seed)
        self._set_model(GPTModel(preset("tiny")), "preset", "", "tiny (untrained)", note)

    def _set_model(self, model: GPTModel, source: str, path: str, name: str, note: str = "") -> ModelInfo:
        model.to(self.device).eval()
        self.model = model
        self.model_source = source
        self.model_path = path
        self.model_name = name
        self.model_note = note
        self.trainer = None
        self.generator = None
        self._live: LiveInspection | None = None  # made on the first inspect()
        self._prompt_pieces_kept: tuple[tuple[Tokenizer, tuple[int, ...]], tuple[str, ...]] | None = None
        self.ablations: tuple[Ablation, ...] = ()  # parts of this model switched off
        self.history_dir: Path | None = None
        self._history_meta: dict[str, Any] = {}
        return self.info()

    def _set_history(self, checkpoint_dir: Path, meta: dict[str, Any]) -> None:
        """Remember where the loaded checkpoint's training was recorded (see `model_history`)."""
        self.history_dir = history_dir_for(checkpoint_dir)
        self._history_meta = dict(meta)

    def info(self) -> ModelInfo:
        cfg = self.model.cfg
        return ModelInfo(
            name=self.model_name,
            source=self.model_source,
            path=self.model_path,
            params=self.model.num_parameters(),
            bytes=model_bytes(self.model),
            device=str(self.device),
            n_layers=cfg.n_layers,
            n_heads=cfg.n_heads,
            emb_dim=cfg.emb_dim,
            context_length=cfg.context_length,
            vocab_size=cfg.vocab_size,
            note=self.model_note,
            config=cfg.to_dict(),
        )

    def load_checkpoint(self, directory: str | os.PathLike) -> ModelInfo:
        """Open a gptviz checkpoint directory (or a run directory holding `checkpoint/`)."""
        from gptviz.engine.checkpoint import load_checkpoint

        path = checkpoint_in(directory)
        model, meta = load_checkpoint(path, self.device)
        name = str(meta.get("name") or path.name if path.name != "checkpoint" else path.parent.name)
        info = self._set_model(model, "checkpoint", str(path), name)
        self._set_history(path, meta)
        return info

    def model_history(self) -> FollowBatch | None:
        """How the loaded model was trained, read once from the run files beside its checkpoint.

        The demo model keeps its run's metrics.jsonl and probes/ next to its weights; a run directory keeps
        them around its checkpoint/. Records and probes after the checkpoint's step are left out (they
        describe weights this model does not have). None when there is no record: a preset, an import, a
        checkpoint saved on its own, a followed run (following shows that run), or unreadable files.
        """
        if self.history_dir is None:
            return None
        return read_history(self.history_dir, self._history_meta, self.model_name)

    def import_weights(self, source: str | os.PathLike, n_heads: int | None = None) -> ModelInfo:
        """GPT-2 weights from a Hugging Face folder/file, the book's .pth, or a gptviz checkpoint."""
        from gptviz.engine.importers import import_weights

        warnings: list[str] = []
        model = import_weights(source, n_heads, warnings=warnings)
        name = Path(source).name or model.cfg.name
        return self._set_model(model, "import", str(source), name, "; ".join(warnings))

    def new_model(self, preset_name: str | GPTConfig, seed: int | None = None) -> ModelInfo:
        """A freshly initialised model of a preset (or any config)."""
        cfg = preset(preset_name) if isinstance(preset_name, str) else preset_name
        check_fits(cfg, training=False, batch_size=1, context=cfg.context_length, device=self.device)
        torch.manual_seed(self.seed if seed is None else seed)
        return self._set_model(GPTModel(cfg), "preset", "", f"{cfg.name} (untrained)")

    def save_checkpoint(self, directory: str | os.PathLike) -> Path:
        from gptviz.engine.checkpoint import save_checkpoint

        meta: dict[str, Any] = {"name": self.model_name}
        trainer_state = None
        if self.trainer is not None:  # mid-run (paused or between steps): keep what a resume needs
            trainer_state = self.trainer.state_dict()
            meta.update(step=self.trainer.step_count, tokens_seen=self.trainer.tokens_seen)
        return save_checkpoint(self.model, directory, trainer_state=trainer_state, meta=meta)

    # --------------------------------------------------------------------------------------- tokens, data

    def tokenize(self, text: str) -> TokensView:
        pieces = self.tokenizer.tokenize(text)
        return TokensView(
            text=text,
            ids=np.array([p.id for p in pieces], dtype=np.int64),  # (T,)
            pieces=tuple(p.display for p in pieces),
            data=tuple(p.data for p in pieces),
            starts=np.array([p.start for p in pieces], dtype=np.int64),  # (T,)
            ends=np.array([p.end for p in pieces], dtype=np.int64),  # (T,)
            special=np.array([p.special for p in pieces], dtype=bool),  # (T,)
            complete=np.array([p.complete for p in pieces], dtype=bool),  # (T,)
        )

    def load_corpus(self, source: str | os.PathLike, lenient: bool = False) -> CorpusInfo:
        corpus = read_corpus_ids(source, self.tokenizer, lenient=lenient)  # streamed: memory ~ the ids
        ids = corpus.ids  # (N,)
        self._corpus_ids = ids
        self.corpus_source = str(source)
        self.corpus = CorpusInfo(
            name=corpus.name,
            path=str(source),
            n_chars=corpus.n_chars,
            n_tokens=int(ids.numel()),
            replacements=corpus.replacements,
        )
        return self.corpus

    @property
    def corpus_ids(self) -> torch.Tensor:
        return self._corpus_ids  # (N,)

    def windows(self, max_length: int, stride: int, first: int = 0, count: int = 8) -> WindowsView:
        """Windows first..first+count of SlidingWindows(corpus, max_length, stride), inputs and targets."""
        if self.corpus is None:
            raise DataError("no corpus loaded; open a text file first")
        dataset = SlidingWindows(self._corpus_ids, max_length, stride)
        count = max(0, min(count, MAX_WINDOW_ROWS))
        first = max(0, min(first, len(dataset) - 1))
        last = min(len(dataset), first + count)
        rows = [dataset[i] for i in range(first, last)]
        inputs = np.stack([x.numpy() for x, _ in rows]).astype(np.int64)  # (n, L)
        targets = np.stack([y.numpy() for _, y in rows]).astype(np.int64)  # (n, L)
        piece = self.tokenizer.piece
        return WindowsView(
            corpus_name=self.corpus.name,
            max_length=max_length,
            stride=stride,
            total=len(dataset),
            first=first,
            inputs=inputs,
            targets=targets,
            input_pieces=tuple(tuple(piece(int(i)) for i in row) for row in inputs),
            target_pieces=tuple(tuple(piece(int(i)) for i in row) for row in targets),
        )

    # --------------------------------------------------------------------------------------- generation

    def _ensure_generator(self) -> Generator:
        if self.generator is None:
            ids = self.tokenizer.encode(self.prompt) or [self.tokenizer.eot_id]
            self.generator = Generator(self.model, self.tokenizer, ids, self.sampling)
        return self.generator

    def current_ids(self) -> list[int]:
        """The shared cursor every pane follows: prompt plus what has been generated."""
        return self._ensure_generator().ids

    def set_prompt(self, prompt: str) -> GenerationView:
        """A new prompt starts a new generation (an empty prompt means "<|endoftext|>")."""
        self.prompt = prompt
        ids = self.tokenizer.encode(prompt) or [self.tokenizer.eot_id]
        gen = self._ensure_generator()
        gen.reset(ids)
        return self.generation_view()

    def set_sampling(self, settings: SamplingSettings) -> SamplingSettings:
        self.sampling = settings
        if self.generator is not None:
            self.generator.settings = settings
        return settings

    def gen_step(self, force_id: int | None = None) -> GenerationView:
        gen = self._ensure_generator()
        if gen.stopped and force_id is None:
            raise ConfigError("generation stopped at <|endoftext|>; press Undo or Reset to go on")
        gen.step(force_id)
        return self.generation_view()

    def force(self, token_id: int) -> GenerationView:
        """Take `token_id` instead of the last step's choice (the same distribution, a different branch)."""
        gen = self._ensure_generator()
        if gen.history:
            gen.undo()
        gen.step(int(token_id))
        return self.generation_view()

    def undo(self) -> GenerationView:
        self._ensure_generator().undo()
        return self.generation_view()

    def reset_generation(self) -> GenerationView:
        self._ensure_generator().reset()
        return self.generation_view()

    def generation_view(self) -> GenerationView:
        gen = self._ensure_generator()
        history = gen.history
        last = history[-1] if history else None
        candidates: tuple[CandidateRow, ...] = ()
        if last is not None:
            candidates = tuple(
                CandidateRow(c.id, c.piece, c.prob_raw, c.prob_final, c.id == last.chosen_id)
                for c in last.candidates
            )
        return GenerationView(
            prompt_ids=np.array(gen.prompt_ids, dtype=np.int64),  # (P,)
            new_ids=np.array(gen.new_ids, dtype=np.int64),  # (N,)
            new_pieces=tuple(s.chosen_piece for s in history),
            new_probs=np.array([s.chosen_prob_final for s in history], dtype=np.float32),  # (N,)
            new_forced=np.array([s.forced for s in history], dtype=bool),  # (N,)
            prompt_pieces=self._prompt_pieces(gen.prompt_ids),
            candidates=candidates,
            last=last,
            cropped=last.cropped if last else 0,
            stopped=gen.stopped,
            settings=gen.settings,
            new_probs_raw=np.array([s.chosen_prob_raw for s in history], dtype=np.float32),  # (N,)
            ablation_effect=self.ablation_effect(),
        )

    def _prompt_pieces(self, prompt_ids: Sequence[int]) -> tuple[str, ...]:
        """The prompt's token pieces, kept while the prompt stays: every Step sends the view again, and
        decoding a 1,000-token prompt's pieces each time cost 2.5 ms."""
        key = (self.tokenizer, tuple(prompt_ids))
        kept = self._prompt_pieces_kept
        if kept is None or kept[0] != key:
            kept = self._prompt_pieces_kept = (key, tuple(self.tokenizer.piece(i) for i in key[1]))
        return kept[1]

    # ----------------------------------------------------------------------------------------- training

    def start_training(
        self, settings: TrainSettings | None = None, run_dir: str | os.PathLike | None = None
    ) -> dict[str, Any]:
        """Start a training run of the current model on the current corpus (in memory unless `run_dir`)."""
        from gptviz.data import split_ids
        from gptviz.engine.train_settings import TrainSettings
        from gptviz.engine.trainer import Trainer

        if self.corpus is None:
            raise DataError("no corpus loaded; open a text file (or the built-in corpus) first")
        settings = (
            settings
            if settings is not None
            else TrainSettings(steps=200, batch_size=4, eval_freq=20, eval_iter=2, device=str(self.device))
        )
        if settings.device == "auto":
            settings = settings.replace(device=str(self.device))  # the panes' model must stay where it is
        if getattr(settings, "split", "tokens") == "chars":  # the book's cut: the characters, then tokenize
            from gptviz.data import read_split_ids

            parts = read_split_ids(self.corpus_source, self.tokenizer, settings.val_ratio, "chars")
            train_ids, val_ids = parts.train, parts.val  # (N_train,), (N_val,)
        else:
            train_ids, val_ids = split_ids(self._corpus_ids, settings.val_ratio)  # (N_train,), (N_val,)
        corpus = {"name": self.corpus.name, "source": self.corpus_source}
        self.trainer = Trainer(
            self.model, self.tokenizer, train_ids, val_ids, settings, run_dir, corpus=corpus
        )
        self._probes_sent = 0
        if self.model_source in ("demo", "checkpoint", "import") and not self.model_name.endswith(
            "(training)"
        ):
            self.model_name = f"{self.model_name} (training)"
        return self.trainer.model_summary()

    def start_recipe(self, name: str) -> Path:
        """A named run (gptviz.engine.train_settings.RECIPES, e.g. the book's chapter 5 run) in the window: its
        corpus, a fresh model of its shape, its settings; written to the data folder like any window run."""
        from gptviz.engine.train_settings import TrainSettings, recipe

        chosen = recipe(name)
        self.load_corpus(chosen.corpus)
        cfg = chosen.config()
        self.new_model(cfg, seed=int(chosen.train.get("seed", self.seed)))
        self.model_name = f"{chosen.title} (untrained)"
        settings = TrainSettings(**{**chosen.train, "device": str(self.device)})
        return self.start_window_run(settings)

    def start_window_run(self, settings: TrainSettings | None = None) -> Path:
        """Start a run that lives on disk under the data folder (gptviz.engine.runs): the window's training
        is never only in memory. Returns the run directory."""
        from gptviz.engine import runs

        corpus = self.corpus.name if self.corpus is not None else "corpus"
        run_dir = runs.new_run_dir(self.model_name.replace(" (untrained)", ""), corpus)
        self.start_training(settings, run_dir=run_dir)
        with contextlib.suppress(OSError):  # the Runs list's name and the reopen offer's state only
            runs.mark_run(run_dir, runs.RUNNING, model=self.model_name)
        return run_dir

    def resume_run(self, run_dir: str | os.PathLike) -> ModelInfo:
        """Load a run directory's checkpoint with its optimizer, schedule and data position, ready to go on
        training where it stopped (gptviz.engine.trainer.Trainer.resume); the run's history is shown."""
        from gptviz.engine import runs
        from gptviz.engine.rundir import checkpoint_path
        from gptviz.engine.trainer import Trainer

        path = Path(run_dir)
        trainer = Trainer.resume(path, tokenizer=self.tokenizer)
        summary = runs.summarize(path)
        name = summary.model if summary is not None and summary.model != "?" else path.name
        info = self._set_model(trainer.model, "checkpoint", str(checkpoint_path(path)), name)
        self._set_history(checkpoint_path(path), {"step": trainer.step_count})
        self.trainer = trainer
        self._probes_sent = len(trainer.probes)
        with contextlib.suppress(OSError):  # running again: a crash from here on is offered back at launch
            runs.mark_run(path, runs.RUNNING)
        return info

    @property
    def run_dir(self) -> Path | None:
        """Where the current run writes its files (None: no run, or one kept in memory)."""
        return self.trainer.run_dir if self.trainer is not None else None

    def checkpoint_run(self, state: str | None = None) -> Path | None:
        """Write the current run's checkpoint now (Pause, Stop, closing the window); None when there is
        no run on disk. The weights in memory are unchanged. `state` (gptviz.engine.runs.CLOSED when the
        window closes) is recorded after the checkpoint, so the next launch offers the run back."""
        if self.trainer is None or self.trainer.run_dir is None:
            return None
        saved = self.trainer.save()
        if state is not None:
            from gptviz.engine import runs

            with contextlib.suppress(OSError):
                runs.mark_run(self.trainer.run_dir, state)
        return saved

    def train_step(self) -> TrainingUpdate:
        """One optimizer step of the current run, plus the probes recorded since the last call."""
        if self.trainer is None:
            raise ConfigError("no training run: press Start first")
        result = self.trainer.step()
        self._weights_changed()
        probes = tuple(self.trainer.probes[self._probes_sent :])
        self._probes_sent = len(self.trainer.probes)
        settings = self.trainer.settings
        return TrainingUpdate(
            result=result,
            new_probes=probes,
            batch_tokens=settings.batch_size * self.trainer.context,
            corpus_name=self.corpus.name if self.corpus else "",
        )

    def begin_training(self) -> TrainingUpdate | None:
        """A fresh run's step 0: the untrained model's losses and probe (Trainer.start), so a validation loss
        shows before the first step has run; None once the run has started (or when it was resumed)."""
        if self.trainer is None:
            raise ConfigError("no training run: press Start first")
        result = self.trainer.start()
        if result is None:
            return None
        probes = tuple(self.trainer.probes[self._probes_sent :])
        self._probes_sent = len(self.trainer.probes)
        return TrainingUpdate(
            result=result,
            new_probes=probes,
            batch_tokens=self.trainer.settings.batch_size * self.trainer.context,
            corpus_name=self.corpus.name if self.corpus else "",
        )

    def stop_training(self) -> None:
        """End the run (the weights stay as trained; Save writes them)."""
        if self.trainer is not None:
            if self.trainer.run_dir is not None:  # ended in front of the user: not offered at next launch
                from gptviz.engine import runs

                with contextlib.suppress(OSError):
                    runs.mark_run(self.trainer.run_dir, runs.STOPPED)
            self.trainer.close()
        self.trainer = None
        self.model.eval()
        self._weights_changed()

    def _weights_changed(self) -> None:
        """The generator's KV cache and the live inspection hold what the old weights computed: make both
        start again from the whole window."""
        if self.generator is not None:
            self.generator.invalidate_cache()
        if self._live is not None:
            self._live.clear()
        self._forget_plain_logits()

    # ---------------------------------------------------------------------------------- following a run

    def follow_run(self, run_dir: str | os.PathLike) -> RunFollower:
        """Watch a run directory written by another process (gptviz train, torchrun): metrics and probes.

        The run's latest checkpoint, when there is one, becomes the session's model.
        """
        from gptviz.engine.rundir import checkpoint_path

        path = Path(run_dir)
        follower = RunFollower.open(path)
        if (checkpoint_path(path) / "config.json").is_file():
            self.load_checkpoint(checkpoint_path(path))
            self.model_name = f"{path.name} (followed)"
            self.history_dir = None  # the follower shows this run, live
        return follower

    def poll_run(self, follower: RunFollower) -> FollowBatch | None:
        """New metrics lines and probes since the last poll; None when nothing changed."""
        return follower.poll()
