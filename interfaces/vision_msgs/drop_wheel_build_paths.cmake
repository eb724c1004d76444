# Passed as CMAKE_PROJECT_INCLUDE by scripts/build_vision_msgs.sh.
#
# Some ROS 2 message wheels ship *__rosidl_generator_pyExport.cmake files with the wheel
# builder's include paths baked in (/opt/python/...); cmake rejects an imported target whose
# INTERFACE_INCLUDE_DIRECTORIES name a missing directory. At the end of configure, drop every
# such path from all imported targets (our own targets get the real Python and NumPy include
# directories from FindPython3).
function(_tyx_drop_wheel_build_paths)
  get_property(_dirs DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _dirs)
    get_target_property(_includes "${_target}" INTERFACE_INCLUDE_DIRECTORIES)
    if(_includes)
      set(_kept "")
      foreach(_dir IN LISTS _includes)
        if(NOT _dir MATCHES "^/opt/python/")
          list(APPEND _kept "${_dir}")
        endif()
      endforeach()
      set_target_properties("${_target}" PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _tyx_drop_wheel_build_paths)
