/// Placeholder replaced by the QMP/QGA clients (issue 3).
enum ControlLayer {}
