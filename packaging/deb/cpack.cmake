# The Debian package: `cpack -G DEB` in the build directory writes clusterd_VERSION-1_ARCH.deb.
# Depends is computed by dpkg-shlibdeps (dpkg-dev) from the libraries the binary links.

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME clusterd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "clusterd maintainers <maintainers@users.noreply.b-seed-dbbaa459.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "run a program as N workers that share listening sockets")
# The long description; CPack puts the summary above it and indents it as dpkg expects.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "clusterd is a process supervisor: the Node.js cluster module for any program. It opens
listening sockets once and starts N workers that inherit them the way systemd socket
activation passes them (fd 3.., LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES). It restarts
workers with backoff, stops them gracefully, replaces them one batch at a time on
SIGHUP (rolling reload), and answers clusterd status|reload|scale N|stop on a
control socket. It fits a Type=notify systemd service and socket activation.")

# Debian's layout: /usr/bin, /usr/share, /etc, /lib/systemd/system (install_layout.cmake).
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Binaries in a .deb are stripped (Debian policy 10.1); the build tree keeps the debug info.
set(CPACK_STRIP_FILES ON)

# /etc/clusterd/clusterd.toml is a conffile: dpkg keeps an operator's edits on upgrade and removes
# the file only on purge. CPACK_PACKAGING_INSTALL_PREFIX is /usr, so the config is under /etc.
set(clusterd_deb_control ${CMAKE_BINARY_DIR}/deb-control)
file(WRITE ${clusterd_deb_control}/conffiles "/etc/clusterd/clusterd.toml\n")
foreach(script postinst prerm postrm)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${script} ${clusterd_deb_control}/${script} COPYONLY)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${clusterd_deb_control}/conffiles
    ${clusterd_deb_control}/postinst
    ${clusterd_deb_control}/prerm
    ${clusterd_deb_control}/postrm)
# Maintainer scripts 0755, conffiles 0644, as dpkg expects, whatever the umask of the checkout.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
