print("meshq")
