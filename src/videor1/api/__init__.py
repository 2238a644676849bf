"""`videor1 serve`: an OpenAI-compatible chat-completions server (the wire format in `protocol`, request
contents in `content`). The client that evaluation, inference and annotation use against it or against
vLLM is `videor1.rollout.chat` (the `endpoint` engine, `videor1.rollout.endpoint`).

The server lives in `videor1.api.server` (imports FastAPI): import it where it is served.
"""

from videor1.api.protocol import APIError, ChatRequest, ChatResponse

__all__ = ["APIError", "ChatRequest", "ChatResponse"]
