print("meshqd")
