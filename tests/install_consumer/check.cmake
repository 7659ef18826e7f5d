# check.cmake: CTest driver of the test install_consumer. Installs the build into a fresh prefix,
# runs the installed `isonet` (simulate, train a few steps, restore), builds this folder's program
# against the installed package (find_package(isonet) in a separate CMake project), and requires
# its restoration to equal the installed program's byte for byte (same library code, CPU,
# deterministic), and a missing input to fail with a message and no output file.
#   cmake -DBUILD=<isonet build> -DWORK=<folder> -DSOURCE=<repo root> -DCXX=<compiler>
#         -DPREFIX_PATH=<the build's CMAKE_PREFIX_PATH> -DCXX_FLAGS=<its CMAKE_CXX_FLAGS>
#         -DLINKER_FLAGS=<its CMAKE_EXE_LINKER_FLAGS> -P check.cmake
# (the consumer is compiled and linked with the build's own flags, e.g. a sanitizer build's)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(prefix "${WORK}/prefix")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
endfunction()

run("cmake --install" "${CMAKE_COMMAND}" --install "${BUILD}" --prefix "${prefix}")
foreach(f bin/isonet include/isonet/apps/cmd_restore.h include/isonet/kernels/conv2d.h
          lib/cmake/isonet/isonetConfig.cmake lib/cmake/isonet/isonetConfigVersion.cmake)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "the install lacks ${f}")
  endif()
endforeach()

# A model and an input from the installed program (tiny: this tests the plumbing, not the quality).
set(isonet "${prefix}/bin/isonet")
run("isonet simulate" "${isonet}" simulate --size 32 --psf gaussian:1,2 --subsample 2 --device cpu
    --out-prefix "${WORK}/sim")
run("isonet train" "${isonet}" train --input "${WORK}/sim_aniso.tif" --psf gaussian:1,2 --steps 2 --batch 2
    --patch 16 --patches 8 --device cpu --out "${WORK}/model.isonet")
run("isonet restore" "${isonet}" restore --model "${WORK}/model.isonet" --input "${WORK}/sim_aniso.tif"
    --output "${WORK}/by_program.tif" --device cpu)

# The consumer: its own CMake project, finding isonet (and isonet's dependencies) by prefix.
run("configuring the consumer" "${CMAKE_COMMAND}" -S "${SOURCE}/tests/install_consumer" -B "${WORK}/consumer"
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_PREFIX_PATH=${prefix};${PREFIX_PATH}"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}")
run("building the consumer" "${CMAKE_COMMAND}" --build "${WORK}/consumer")
set(consumer "${WORK}/consumer/restore_with_library")
run("restore_with_library" "${consumer}" "${WORK}/model.isonet" "${WORK}/sim_aniso.tif" "${WORK}/by_library.tif" cpu)

file(SHA256 "${WORK}/by_program.tif" by_program)
file(SHA256 "${WORK}/by_library.tif" by_library)
if(NOT by_program STREQUAL by_library)
  message(FATAL_ERROR "the library's restoration differs from the installed program's")
endif()

execute_process(COMMAND "${consumer}" "${WORK}/model.isonet" "${WORK}/missing.tif" "${WORK}/never.tif" cpu
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "missing.tif" OR EXISTS "${WORK}/never.tif")
  message(FATAL_ERROR "a missing input should fail naming it and write nothing: exit ${rc}, message '${err}'")
endif()
message(STATUS "installed isonet: program and find_package(isonet) consumer agree byte for byte")
