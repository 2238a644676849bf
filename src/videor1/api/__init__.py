"""OpenAI-compatible chat completions: the wire format (protocol), the server (`videor1 serve`), and the
client that evaluation, inference and annotation use against it or against vLLM.

The server lives in `videor1.api.server` (imports FastAPI): import it where it is served.
"""

from videor1.api.client import ChatClient, ChatReply, EndpointError, EndpointGenerator
from videor1.api.protocol import APIError, ChatRequest, ChatResponse, encode_mp4, prompt_messages

__all__ = ["APIError", "ChatClient", "ChatReply", "ChatRequest", "ChatResponse", "EndpointError",
           "EndpointGenerator", "encode_mp4", "prompt_messages"]
