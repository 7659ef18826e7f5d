# check_table1_smoke.cmake: CTest driver for the Table 1 harness at a tiny size. Runs bench_table1
# in full mode (every dataset, every method, the segmentation check) on a 40^3 scene with a few
# training steps, then checks that the JSON holds a finite PSNR mean for each dataset x method and
# a SEG entry per condition. It tests the pipeline, not the numbers (those are in bench/results).
#   cmake -DHARNESS=<bench_table1> -DWORK=<folder> -DSOURCE=<repo root> -P check_table1_smoke.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
execute_process(
  COMMAND "${HARNESS}" --mode full --device cpu --n 2 --size 40 --steps 4 --pairs 16 --batch 4 --patch 16
          --rl-iterations 2 --nucleus-radius 5 --cell-size 12 --paper "${SOURCE}/bench/paper_table1.json"
          --out-md "${WORK}/t1.md" --out-json "${WORK}/t1.json"
  WORKING_DIRECTORY "${SOURCE}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "bench_table1 failed with exit code ${rc}")
endif()
file(READ "${WORK}/t1.md" md)
if(NOT md MATCHES "IsoNet-2 split" OR NOT md MATCHES "Segmentation")
  message(FATAL_ERROR "t1.md lacks the method rows or the segmentation table")
endif()
file(READ "${WORK}/t1.json" json)
foreach(dataset nuclei membranes nuclei+membranes)
  foreach(method blurred rl srcnn isonet1-full isonet1-split isonet2-full isonet2-split)
    string(JSON mean ERROR_VARIABLE err GET "${json}" results ${dataset} summary ${method} psnr_iso_gt 0)
    if(err OR NOT mean MATCHES "^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$")
      message(FATAL_ERROR "${dataset}/${method}: no finite PSNR mean in the JSON (${err}${mean})")
    endif()
  endforeach()
endforeach()
foreach(condition iso_gt blurred isonet2-full isonet2-split)
  string(JSON seg ERROR_VARIABLE err GET "${json}" results nuclei segmentation ${condition} objects_true)
  if(err)
    message(FATAL_ERROR "nuclei segmentation/${condition} missing: ${err}")
  endif()
endforeach()
message(STATUS "bench_table1 smoke run: all 3 datasets x 7 methods and the segmentation check present")
