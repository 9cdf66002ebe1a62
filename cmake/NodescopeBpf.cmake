# nodescope_bpf_skeleton(NAME <name> SRC <file.bpf.c>)
#
# Compiles a BPF program with clang against the checked-in vmlinux.h and turns the object into a
# libbpf skeleton header (<name>.skel.h) with `bpftool gen skeleton`. The result is an INTERFACE
# library `bpf_<name>` whose include directory holds the header.
find_program(NODESCOPE_CLANG NAMES clang-14 clang REQUIRED)
find_program(NODESCOPE_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

set(NODESCOPE_BPF_ARCH x86)
set(NODESCOPE_BPF_INCLUDES
  ${PROJECT_SOURCE_DIR}
  ${PROJECT_SOURCE_DIR}/bpf/vmlinux/${NODESCOPE_BPF_ARCH}
  ${PROJECT_SOURCE_DIR}/bpf/include)

function(nodescope_bpf_skeleton)
  cmake_parse_arguments(ARG "" "NAME;SRC" "" ${ARGN})
  set(out_dir ${CMAKE_BINARY_DIR}/bpf)
  set(obj ${out_dir}/${ARG_NAME}.bpf.o)
  set(skel ${out_dir}/${ARG_NAME}.skel.h)
  set(inc_flags)
  foreach(dir ${NODESCOPE_BPF_INCLUDES})
    list(APPEND inc_flags -I${dir})
  endforeach()
  file(GLOB bpf_headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bpf/abi/*.h
       ${PROJECT_SOURCE_DIR}/bpf/include/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${NODESCOPE_CLANG} -target bpf -g -O2 -Wall -Werror
            -D__TARGET_ARCH_${NODESCOPE_BPF_ARCH} ${inc_flags}
            -c ${PROJECT_SOURCE_DIR}/${ARG_SRC} -o ${obj}
    DEPENDS ${PROJECT_SOURCE_DIR}/${ARG_SRC} ${bpf_headers}
    COMMENT "BPF ${ARG_SRC}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND sh -c "${NODESCOPE_BPFTOOL} gen skeleton ${obj} name ${ARG_NAME}_bpf > ${skel}.tmp && mv ${skel}.tmp ${skel}"
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${ARG_NAME}.skel.h"
    VERBATIM)
  add_custom_target(bpf_${ARG_NAME}_gen DEPENDS ${skel})
  add_library(bpf_${ARG_NAME} INTERFACE)
  add_dependencies(bpf_${ARG_NAME} bpf_${ARG_NAME}_gen)
  target_include_directories(bpf_${ARG_NAME} INTERFACE ${out_dir})
endfunction()
