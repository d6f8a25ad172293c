"""Plain data passed between the completion stages. No LSP types here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Snippet:
    """A short piece of another file (or a recently edited range) given to the model as context."""

    path: str  # a workspace-relative path or a file name, shown to the model
    text: str


@dataclass(frozen=True)
class CompletionRequest:
    """One completion request, already converted from LSP: the document and a cursor offset into it."""

    uri: str
    text: str  # the whole document (python str)
    offset: int  # cursor offset into `text`, in python characters
    language_id: str = ""
    invoked: bool = False  # triggerKind Invoked: the user asked explicitly, skip the debounce


@dataclass(frozen=True)
class PromptContext:
    """What the model sees, bounded by completion.maxPrefixChars/maxSuffixChars."""

    prefix: str  # text before the cursor, cut on a line boundary to at most maxPrefixChars
    suffix: str  # text after the cursor, cut on a line boundary to at most maxSuffixChars
    filename: str = ""  # file name (or relative path) of the document
    language_id: str = ""
    snippets: tuple[Snippet, ...] = ()  # other open documents / recent edits, already bounded

    @property
    def line_prefix(self) -> str:
        """Text of the cursor's line before the cursor."""
        return self.prefix.rsplit("\n", 1)[-1]

    @property
    def line_suffix(self) -> str:
        """Text of the cursor's line after the cursor."""
        return self.suffix.split("\n", 1)[0]


@dataclass
class GenerationRequest:
    """What a backend is asked to generate. Built by the templating stage."""

    prefix: str
    suffix: str
    prompt: str  # the raw FIM prompt for /v1/completions and Ollama raw mode ("" for chat templates)
    stop: list[str] = field(default_factory=list)
    max_tokens: int = 128
    temperature: float = 0.0
    model: str | None = None
    snippets: tuple[Snippet, ...] = ()  # for llama.cpp /infill input_extra
    messages: list[dict] | None = None  # set for the `chat` template: OpenAI-style chat messages
    timeout_ms: int = 2500  # used by llama.cpp's t_max_predict_ms
