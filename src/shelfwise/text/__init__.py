"""Turning items (and a shopper's words) into vectors with a language model."""

from shelfwise.text.cache import EmbeddingCache
from shelfwise.text.encoder import (
    DEFAULT_ENCODER,
    EncoderError,
    OpenAIEmbeddingEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    create_encoder,
)
from shelfwise.text.item_text import ItemTextTemplate
from shelfwise.text.pipeline import EncodeResult, encode_items, encode_texts

__all__ = [
    "DEFAULT_ENCODER",
    "EmbeddingCache",
    "EncodeResult",
    "EncoderError",
    "ItemTextTemplate",
    "OpenAIEmbeddingEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "create_encoder",
    "encode_items",
    "encode_texts",
]
