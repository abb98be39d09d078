@_exported import DTSSession
