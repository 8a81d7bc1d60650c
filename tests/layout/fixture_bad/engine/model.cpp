// Fixture for layout.check_catches_violations: the engine reaching for Qt (forbidden).
#include <QString>
