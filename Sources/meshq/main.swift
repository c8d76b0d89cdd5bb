// meshq: the command-line client (meshq(1), docs/operations.md).
MeshQ.main()
