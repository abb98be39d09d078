// Placeholder replaced by the session benchmark (issue 3).
print("session benchmark not built yet")
