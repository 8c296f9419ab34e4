"""Sans-I/O building blocks shared by tracker and peers (chunk maps, hardened XML)."""
