# TANDEM_CUDA=AUTO builds the CUDA backend when nvcc is found; ON requires it; OFF skips it.
# The core libraries never link CUDA: only the targets under trainer/backend/cuda do.
# TANDEM_CUDA_ROOT names a toolkit-shaped tree (bin/nvcc, include/, lib64/): an installed toolkit
# or the one scripts/install-cuda.sh assembles from PyPI's CUDA wheels. scripts/build.sh sets it.
set(TANDEM_CUDA_ENABLED OFF)
set(TANDEM_CUDA_ROOT "" CACHE PATH "CUDA toolkit root (bin/nvcc, include, lib64); empty: search")
if(NOT TANDEM_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(TANDEM_CUDA_ROOT)
    if(NOT CMAKE_CUDA_COMPILER)
      set(CMAKE_CUDA_COMPILER ${TANDEM_CUDA_ROOT}/bin/nvcc)
    elseif(NOT CMAKE_CUDA_COMPILER STREQUAL "${TANDEM_CUDA_ROOT}/bin/nvcc")
      # A new toolkit (other pins) under a build tree configured with another nvcc: CMake cannot
      # switch the CUDA compiler of an existing tree.
      message(FATAL_ERROR "build tree uses ${CMAKE_CUDA_COMPILER}, TANDEM_CUDA_ROOT is "
                          "${TANDEM_CUDA_ROOT}: remove ${CMAKE_BINARY_DIR} and configure again")
    endif()
    set(CUDAToolkit_ROOT ${TANDEM_CUDA_ROOT})
  endif()
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(_tandem_nvcc nvcc HINTS /usr/local/cuda/bin ENV CUDA_HOME PATH_SUFFIXES bin)
    if(_tandem_nvcc)
      set(CMAKE_CUDA_COMPILER ${_tandem_nvcc})
    endif()
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # Hopper (H100/H200) SASS only, plus its PTX for forward compatibility: one architecture
      # keeps the CI compile small.
      set(CMAKE_CUDA_ARCHITECTURES 90-real 90-virtual)
    endif()
    enable_language(CUDA)
    # CMake 3.25 does not know nvcc 13's C++20 flag; our .cu files are C++17.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    # cuDNN is not part of FindCUDAToolkit; it sits beside cuBLAS in the wheel tree and
    # in a toolkit with them installed.
    find_path(TANDEM_CUDNN_INCLUDE cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${TANDEM_CUDA_ROOT}/include)
    find_library(TANDEM_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} ${TANDEM_CUDA_ROOT}/lib64)
    foreach(_v TANDEM_CUDNN_INCLUDE TANDEM_CUDNN_LIBRARY)
      if(NOT ${_v})
        message(FATAL_ERROR "CUDA found but not cuDNN (${_v}); run scripts/install-cuda.sh")
      endif()
    endforeach()
    add_library(tandem_cudnn INTERFACE)
    target_include_directories(tandem_cudnn SYSTEM INTERFACE ${TANDEM_CUDNN_INCLUDE})
    target_link_libraries(tandem_cudnn INTERFACE ${TANDEM_CUDNN_LIBRARY})
    set(TANDEM_CUDA_ENABLED ON)
  elseif(TANDEM_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TANDEM_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
