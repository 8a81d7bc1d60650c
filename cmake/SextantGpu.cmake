# GPU toolchains. Both are optional: the project builds and passes its tests without them.
#   SEXTANT_WITH_CUDA / SEXTANT_WITH_HIP: AUTO (use where found), ON (required), OFF.
# Sets SEXTANT_HAVE_CUDA, SEXTANT_HAVE_HIP and SEXTANT_BACKENDS (e.g. "cpu;cuda;hip").
set(SEXTANT_BACKENDS cpu)
set(SEXTANT_HAVE_CUDA OFF)
set(SEXTANT_HAVE_HIP OFF)

if(NOT SEXTANT_WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # sm_80 (A100), sm_90 (H100/H200) as real code, plus PTX for newer GPUs.
      set(CMAKE_CUDA_ARCHITECTURES 80-real 90-real 90-virtual)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(SEXTANT_HAVE_CUDA ON)
    list(APPEND SEXTANT_BACKENDS cuda)
  elseif(SEXTANT_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SEXTANT_WITH_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()

if(NOT SEXTANT_WITH_HIP STREQUAL "OFF")
  # Debian 12 ships HIP 5.2 with clang-15 and puts the CMake packages under the multiarch dir,
  # where CMake 3.25's HIP language does not look. A small ROCm-root shim points it there.
  set(_sextant_deb_cm /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake)
  find_program(SEXTANT_HIP_CLANG clang++-15)
  if(SEXTANT_HIP_CLANG AND EXISTS ${_sextant_deb_cm}/hip-lang/hip-lang-config.cmake
     AND EXISTS ${_sextant_deb_cm}/amd_comgr)
    set(_shim ${CMAKE_BINARY_DIR}/rocm-root-shim)
    file(MAKE_DIRECTORY ${_shim}/lib/cmake)
    if(NOT EXISTS ${_shim}/lib/cmake/hip-lang)
      file(CREATE_LINK ${_sextant_deb_cm}/hip-lang ${_shim}/lib/cmake/hip-lang SYMBOLIC)
    endif()
    set(CMAKE_HIP_COMPILER_ROCM_ROOT ${_shim})
    set(amd_comgr_DIR ${_sextant_deb_cm}/amd_comgr)
    list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES amd_comgr_DIR)
    set(CMAKE_HIP_COMPILER ${SEXTANT_HIP_CLANG})
    set(CMAKE_HIP_FLAGS_INIT
        "--rocm-path=/usr --rocm-device-lib-path=/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/amdgcn/bitcode")
    if(NOT DEFINED CMAKE_HIP_ARCHITECTURES)
      set(CMAKE_HIP_ARCHITECTURES gfx90a gfx1030)   # MI200 and RDNA2; MI300X (gfx942) needs ROCm >= 5.7
    endif()
    enable_language(HIP)
    # Programs that contain HIP objects are still linked by the C++ compiler (g++), like the
    # CUDA ones; hip::host brings the HIP runtime.
    set(CMAKE_HIP_LINKER_PREFERENCE_PROPAGATES OFF)
    find_package(hip CONFIG REQUIRED)
    set(SEXTANT_HAVE_HIP ON)
    list(APPEND SEXTANT_BACKENDS hip)
  elseif(SEXTANT_WITH_HIP STREQUAL "ON")
    message(FATAL_ERROR "SEXTANT_WITH_HIP=ON but Debian's HIP toolchain (clang++-15, hip-lang) was not found")
  endif()
endif()
