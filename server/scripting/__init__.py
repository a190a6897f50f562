"""Server-side scripting: Orthanc-compatible Lua (:mod:`server.scripting.lua`) and Python
(:mod:`server.scripting.python`)."""
