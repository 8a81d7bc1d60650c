# cmake -DROOT=<tree> -P check_layout.cmake
# Fails (FATAL_ERROR, exit 1) listing every file that includes a header its layer must not:
#   ui/      : no gRPC, protobuf, SQLite, CUDA or HIP headers
#   engine/  : no Qt or gRPC headers; CUDA/HIP headers only under engine/backends/
#   app/     : (domain, excluding the programs app/sextant and app/sextant-agent) no Qt Widgets,
#              gRPC or protobuf headers
#   anything else outside engine/backends/: no CUDA or HIP headers
if(NOT ROOT)
  message(FATAL_ERROR "check_layout.cmake: pass -DROOT=<source tree>")
endif()

set(_gpu   "cuda[_a-z]*\\.h|cuda/|cublas|hip/|hipblas|rocblas")
set(_grpc  "grpc|grpcpp|google/protobuf|\\.pb\\.h")
set(_qt    "Q[A-Z][A-Za-z]+|Qt[A-Z][A-Za-z]+/")
set(_sql   "sqlite3")

set(_violations "")
function(_scan dir forbidden why)
  set(options)
  cmake_parse_arguments(S "" "" "EXCLUDE" ${ARGN})
  file(GLOB_RECURSE files LIST_DIRECTORIES false
       ${ROOT}/${dir}/*.h ${ROOT}/${dir}/*.hpp ${ROOT}/${dir}/*.cpp ${ROOT}/${dir}/*.cc
       ${ROOT}/${dir}/*.cu ${ROOT}/${dir}/*.cuh)
  foreach(f IN LISTS files)
    set(skip FALSE)
    foreach(ex IN LISTS S_EXCLUDE)
      if(f MATCHES "^${ROOT}/${ex}/")
        set(skip TRUE)
      endif()
    endforeach()
    if(skip)
      continue()
    endif()
    file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](${forbidden})")
    foreach(l IN LISTS lines)
      file(RELATIVE_PATH rel ${ROOT} ${f})
      string(STRIP "${l}" l)
      list(APPEND _violations "${rel}: '${l}' (${why})")
    endforeach()
  endforeach()
  set(_violations "${_violations}" PARENT_SCOPE)
endfunction()

_scan(ui "${_grpc}|${_sql}|${_gpu}" "ui/ must not include gRPC, protobuf, SQLite or GPU headers")
_scan(engine "${_qt}|${_grpc}" "engine/ must not include Qt or gRPC headers")
_scan(engine "${_gpu}" "GPU headers belong under engine/backends/" EXCLUDE engine/backends)
_scan(app "${_grpc}|QtWidgets|QtCharts|QWidget|QMainWindow" "app/ (domain) has no widgets and no wire code"
      EXCLUDE app/sextant app/sextant-agent)
_scan(app "${_gpu}" "GPU headers belong under engine/backends/")
_scan(connectors "${_gpu}|${_qt}" "connectors/ has no GPU or Qt headers")

if(_violations)
  list(JOIN _violations "\n  " text)
  message(FATAL_ERROR "Layout check failed:\n  ${text}")
endif()
message(STATUS "Layout check passed")
