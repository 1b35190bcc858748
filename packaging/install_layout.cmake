# Runs at install time (`cmake --install`, and CPack for the .deb), when the prefix is final:
# installs the bash completion, the systemd units with this prefix's paths in them, and the example
# config, which it never overwrites. packaging/CMakeLists.txt sets the CLUSTERD_* variables.

# Strip a trailing "/" so "/usr/" and "/usr" compare equal (the prefix "/" becomes "").
string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")

# GNUInstallDirs' rule for CMAKE_INSTALL_FULL_SYSCONFDIR, applied to this install's prefix:
# /usr → /etc, /opt/NAME → /etc/opt/NAME, anything else → PREFIX/etc.
if(IS_ABSOLUTE "${CLUSTERD_SYSCONFDIR}")
  set(sysconfdir "${CLUSTERD_SYSCONFDIR}")
elseif(prefix STREQUAL "" OR prefix STREQUAL "/usr")
  set(sysconfdir "/${CLUSTERD_SYSCONFDIR}")
elseif(prefix MATCHES "^/opt/")
  set(sysconfdir "/${CLUSTERD_SYSCONFDIR}${prefix}")
else()
  set(sysconfdir "${prefix}/${CLUSTERD_SYSCONFDIR}")
endif()

# Where install(TARGETS) put the binary: the units must name that path.
if(IS_ABSOLUTE "${CLUSTERD_BINDIR}")
  set(bindir "${CLUSTERD_BINDIR}")
else()
  set(bindir "${prefix}/${CLUSTERD_BINDIR}")
endif()

# pkg-config's directory when installing into pkg-config's own prefix (the .deb), else the same
# directory under this prefix, so `--prefix /tmp/x` never writes outside /tmp/x.
function(pkg_config_dir out name)
  if(CLUSTERD_${name}_ABSOLUTE AND prefix STREQUAL CLUSTERD_${name}_PKG_PREFIX)
    set(${out} "${CLUSTERD_${name}_ABSOLUTE}" PARENT_SCOPE)
  elseif(IS_ABSOLUTE "${CLUSTERD_${name}_RELATIVE}")
    set(${out} "${CLUSTERD_${name}_RELATIVE}" PARENT_SCOPE)
  else()
    set(${out} "${prefix}/${CLUSTERD_${name}_RELATIVE}" PARENT_SCOPE)
  endif()
endfunction()
pkg_config_dir(completion_dir BASH_COMPLETION)
pkg_config_dir(unit_dir SYSTEMD_UNIT)

# bash-completion loads a command's completion from a file named after the command.
file(INSTALL DESTINATION "${completion_dir}" TYPE FILE
     FILES "${CLUSTERD_PACKAGING_DIR}/completion/clusterd.bash" RENAME clusterd)

# The units in packaging/systemd name the .deb's paths (/usr/bin/clusterd, /etc/clusterd/), so they
# read right as they are; for another prefix those paths are replaced. A unit that no longer names
# them is an error, not a unit left pointing at the wrong binary.
string(MD5 staging_key "$ENV{DESTDIR}|${prefix}")
set(staging "${CLUSTERD_STAGING_DIR}/${staging_key}")
file(MAKE_DIRECTORY "${staging}")
set(units clusterd.service clusterd.socket clusterd@.service clusterd@.socket)
foreach(unit IN LISTS units)
  file(READ "${CLUSTERD_PACKAGING_DIR}/systemd/${unit}" text)
  if(unit MATCHES "\\.service$")
    foreach(path "/usr/bin/clusterd " "/etc/clusterd/")
      string(FIND "${text}" "${path}" found)
      if(found EQUAL -1)
        message(FATAL_ERROR "packaging/systemd/${unit} no longer contains \"${path}\"; "
                            "update packaging/install_layout.cmake")
      endif()
    endforeach()
    string(REPLACE "/usr/bin/clusterd " "${bindir}/clusterd " text "${text}")
    string(REPLACE "/etc/clusterd/" "${sysconfdir}/clusterd/" text "${text}")
  endif()
  file(WRITE "${staging}/${unit}" "${text}")
endforeach()
list(TRANSFORM units PREPEND "${staging}/")
file(INSTALL DESTINATION "${unit_dir}" TYPE FILE FILES ${units})
file(REMOVE_RECURSE "${staging}")

# The example config: an operator's edits survive every later install. The .deb marks it as a
# conffile (dpkg asks on upgrade); here an existing file is kept and, when the shipped one differs,
# that one is written beside it as clusterd.toml.new to compare. It is not written to
# install_manifest.txt, so `xargs rm < install_manifest.txt` leaves the config (as `apt remove`
# does); docs/install.md says how to remove it too.
set(config_dir "$ENV{DESTDIR}${sysconfdir}/clusterd")
set(config "${config_dir}/clusterd.toml")
if(NOT EXISTS "${config}")
  message(STATUS "Installing: ${config}")
  file(COPY "${CLUSTERD_CONFIG_FILE}" DESTINATION "${config_dir}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
else()
  file(READ "${config}" installed)
  file(READ "${CLUSTERD_CONFIG_FILE}" shipped)
  if(installed STREQUAL shipped)
    message(STATUS "Up-to-date: ${config}")
  else()
    message(STATUS "Kept: ${config} (yours); the shipped example is ${config}.new")
    configure_file("${CLUSTERD_CONFIG_FILE}" "${config}.new" COPYONLY)
  endif()
endif()
