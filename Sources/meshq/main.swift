// meshq: the command-line client (PROTOCOL.md §3).
MeshQ.main()
