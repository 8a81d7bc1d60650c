// Fixture for layout.check_catches_violations: a view that dials gRPC directly (forbidden).
#include <grpcpp/grpcpp.h>
