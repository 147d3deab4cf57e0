"""The protocol itself: msgspec types and codecs shared by the server and the SDK."""
