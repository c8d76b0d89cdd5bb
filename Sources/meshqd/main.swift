// meshqd: one node of a meshq cluster, in the foreground (systemd runs it so).
MeshQD.main()
