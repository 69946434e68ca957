"""charrnn: a character-level vanilla RNN in NumPy.

    from charrnn import (Vocabulary, load_text, default_corpus_path, init_params, loss_and_grads,
                         numerical_grads, relative_errors, TrainConfig, train, sample, load_checkpoint)
"""
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .corpus import Corpus, CorpusError, build_shakespeare, default_corpus_path, load_text
from .paths import repo_root, runs_dir
from .gradcheck import numerical_grads, relative_errors
from .models.rnn import init_params, loss_and_grads
from .sampling import SamplingError, next_char_distribution, sample
from .trainer import History, TrainingDiverged, TrainingInterrupted, train
from .vocab import Vocabulary

__all__ = [
    "Vocabulary", "load_text", "default_corpus_path", "init_params", "loss_and_grads",
    "numerical_grads", "relative_errors", "TrainConfig", "train", "sample", "load_checkpoint",
    "Checkpoint", "CheckpointError", "save_checkpoint", "ConfigError", "Corpus", "CorpusError",
    "build_shakespeare", "repo_root", "runs_dir", "SamplingError", "next_char_distribution", "History",
    "TrainingDiverged", "TrainingInterrupted",
]
