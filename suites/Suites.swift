import DTS
