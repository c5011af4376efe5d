#!/usr/bin/python3
"""Drives a python-dbusmock BlueZ (``python3 -m dbusmock --system --template bluez5``) for the
BLE integration tests: adds adapters and GATT peripherals, notifies values, drops links.

Run with Debian's /usr/bin/python3 (python3-dbus; the mock itself also needs python3-gi). It
starts nothing itself: it connects to the system bus named by DBUS_SYSTEM_BUS_ADDRESS, waits
until org.bluez is owned there, prints {"ok": true, "ready": true}, then reads one JSON command
per line on stdin and answers one JSON line on stdout: {"ok": true, ...} or
{"ok": false, "error": "..."}.

Commands:
  {"cmd": "adapter", "name": "hci0"}
  {"cmd": "device", "address": "AA:BB:CC:DD:EE:01", "name": "PulseOx", "rssi": -60,
   "adapter": "hci0", "advertised": [uuid, ...] (default: every service's),
   "services": [{"uuid": "...", "characteristics": [
       {"uuid": "...", "flags": ["read", "notify"], "value": "00 64 00 48 00"}]}]}
  {"cmd": "notify", "address": ..., "characteristic": uuid, "value": "hex"}
      the characteristic's Value changes (PropertiesChanged), as when the peripheral notifies
      or indicates; refused unless a client subscribed (Notifying) while connected
  {"cmd": "disconnect", "address": ...}        the peripheral drops the link
  {"cmd": "refuse_connect", "address": ..., "refuse": true}
      while set, Device1.Connect fails with org.bluez.Error.Failed
  {"cmd": "writes", "address": ..., "characteristic": uuid}
      -> {"writes": ["01 02", ...], "types": ["request" | "command" | null, ...]}
  {"cmd": "connected", "address": ...}          -> {"connected": bool}
  {"cmd": "discovering", "adapter": "hci0"}     -> {"discovering": bool} (a client scans)
  {"cmd": "remove_device", "address": ...}
  {"cmd": "remove_adapter", "name": "hci0"}    with its devices

Devices are made here, not with the template's AddDevice: that one exports the device before
its GATT objects could be added (a client may connect to it in between), and its Connect only
flips a Python attribute (GetAll still says Connected=False, and ServicesResolved, which
bluez-async's connect waits for, stays false). Here Connect sets Connected and then
ServicesResolved. GATT objects follow BlueZ's layout (<device>/serviceXXXX/charYYYY) and exist
from the device's creation on, as BlueZ keeps them for a bonded device whose attributes it
cached. As in BlueZ, a read emits PropertiesChanged on Value too.
"""

import json
import sys
import time

import dbus

BUS_NAME = 'org.bluez'
MOCK_IFACE = 'org.freedesktop.DBus.Mock'
BLUEZ_MOCK_IFACE = 'org.bluez.Mock'
OBJECT_MANAGER_IFACE = 'org.freedesktop.DBus.ObjectManager'
DEVICE_IFACE = 'org.bluez.Device1'
SERVICE_IFACE = 'org.bluez.GattService1'
CHAR_IFACE = 'org.bluez.GattCharacteristic1'

# Method bodies, run inside the dbusmock process: `self` is the mock object, `args` the call's
# arguments, `objects` every mock object by path, `dbus` the dbus module.

CONNECT = '''
device = self.props['org.bluez.Device1']
if device['Connected']:
    raise dbus.exceptions.DBusException('Already Connected', name='org.bluez.Error.AlreadyConnected')
self.UpdateProperties('org.bluez.Device1', {'Connected': dbus.Boolean(True)})
self.UpdateProperties('org.bluez.Device1', {'ServicesResolved': dbus.Boolean(True)})
'''

REFUSE_CONNECT = '''
raise dbus.exceptions.DBusException('Software caused connection abort (mock: refuse_connect)',
                                    name='org.bluez.Error.Failed')
'''

# Shared by Disconnect (the client hangs up) and the controller's "disconnect" (the peripheral
# drops the link): notify sessions end, then ServicesResolved and Connected go false.
DROP_LINK = '''
prefix = self.path + '/'
for path, obj in list(objects.items()):
    if path.startswith(prefix) and 'org.bluez.GattCharacteristic1' in obj.props:
        if obj.props['org.bluez.GattCharacteristic1']['Notifying']:
            obj.UpdateProperties('org.bluez.GattCharacteristic1', {'Notifying': dbus.Boolean(False)})
self.UpdateProperties('org.bluez.Device1', {'ServicesResolved': dbus.Boolean(False)})
self.UpdateProperties('org.bluez.Device1', {'Connected': dbus.Boolean(False)})
'''

DISCONNECT = '''
if not self.props['org.bluez.Device1']['Connected']:
    raise dbus.exceptions.DBusException('Not Connected', name='org.bluez.Error.NotConnected')
''' + DROP_LINK

# Characteristic methods check what BlueZ checks: the link is up, the property is allowed.
CHAR_PRELUDE = '''
device = objects[self.path.rsplit('/', 2)[0]].props['org.bluez.Device1']
flags = [str(f) for f in self.props['org.bluez.GattCharacteristic1']['Flags']]
if not device['Connected']:
    raise dbus.exceptions.DBusException('Not connected', name='org.bluez.Error.Failed')
'''

READ_VALUE = CHAR_PRELUDE + '''
if 'read' not in flags:
    raise dbus.exceptions.DBusException('Read not permitted', name='org.bluez.Error.NotPermitted')
ret = self.props['org.bluez.GattCharacteristic1']['Value']
# BlueZ updates its cached Value after a read, with a PropertiesChanged like a notification's.
self.UpdateProperties('org.bluez.GattCharacteristic1', {'Value': ret})
'''

WRITE_VALUE = CHAR_PRELUDE + '''
if 'write' not in flags and 'write-without-response' not in flags:
    raise dbus.exceptions.DBusException('Write not permitted', name='org.bluez.Error.NotPermitted')
'''

START_NOTIFY = CHAR_PRELUDE + '''
if 'notify' not in flags and 'indicate' not in flags:
    raise dbus.exceptions.DBusException('Operation is not supported', name='org.bluez.Error.NotSupported')
if not self.props['org.bluez.GattCharacteristic1']['Notifying']:
    self.UpdateProperties('org.bluez.GattCharacteristic1', {'Notifying': dbus.Boolean(True)})
'''

STOP_NOTIFY = '''
if self.props['org.bluez.GattCharacteristic1']['Notifying']:
    self.UpdateProperties('org.bluez.GattCharacteristic1', {'Notifying': dbus.Boolean(False)})
'''


class CommandError(Exception):
    pass


class Controller:
    def __init__(self, bus):
        self.bus = bus
        # address (upper case) -> {"path": ..., "chars": {uuid (lower case): path},
        #                          "gatt": [service and characteristic paths, in creation order]}
        self.devices = {}

    def obj(self, path):
        return self.bus.get_object(BUS_NAME, path)

    def mock(self, path):
        return dbus.Interface(self.obj(path), MOCK_IFACE)

    def device_entry(self, command):
        address = str(command['address']).upper()
        if address not in self.devices:
            raise CommandError(f'no device {address} (add it with the "device" command)')
        return self.devices[address]

    def char_path(self, command):
        entry = self.device_entry(command)
        uuid = str(command['characteristic']).lower()
        if uuid not in entry['chars']:
            raise CommandError(f'device {command["address"]} has no characteristic {uuid}')
        return entry['chars'][uuid]

    def interfaces_added(self, path, interface, props):
        self.mock('/').EmitSignal(
            OBJECT_MANAGER_IFACE, 'InterfacesAdded', 'oa{sa{sv}}',
            [dbus.ObjectPath(path),
             dbus.Dictionary({interface: dbus.Dictionary(props, signature='sv')},
                             signature='sa{sv}')])

    def cmd_adapter(self, command):
        name = command.get('name', 'hci0')
        path = dbus.Interface(self.obj('/'), BLUEZ_MOCK_IFACE).AddAdapter(name, 'vitalwatch-test')
        return {'path': str(path)}

    def cmd_remove_adapter(self, command):
        name = command.get('name', 'hci0')
        prefix = f'/org/bluez/{name}/'
        # As BlueZ does when an adapter goes: its devices (and their GATT objects) go too.
        for address, entry in list(self.devices.items()):
            if entry['path'].startswith(prefix):
                for path in reversed(entry['gatt']):
                    self.mock('/').RemoveObject(path)
                del self.devices[address]
        dbus.Interface(self.obj('/'), BLUEZ_MOCK_IFACE).RemoveAdapterWithDevices(name)
        return {}

    def cmd_device(self, command):
        address = str(command['address']).upper()
        if address in self.devices:
            raise CommandError(f'device {address} already exists')
        adapter = command.get('adapter', 'hci0')
        adapter_path = f'/org/bluez/{adapter}'
        if not self.exists(adapter_path):
            raise CommandError(f'no adapter {adapter} (add it with the "adapter" command)')
        name = command.get('name') or address.replace(':', '-')
        services = command.get('services', [])
        advertised = command.get('advertised', [s['uuid'] for s in services])
        path = f'{adapter_path}/dev_{address.replace(":", "_")}'

        # The GATT objects first, the device last (with its methods in the same call), so that
        # no client sees a half-made device: in one step, as BlueZ adds a device it discovers.
        chars = {}
        gatt_paths = []
        gatt_added = []
        handle = 0x0010
        for service in services:
            service_path = f'{path}/service{handle:04x}'
            service_props = {
                'UUID': dbus.String(str(service['uuid']).lower()),
                'Primary': dbus.Boolean(True),
                'Device': dbus.ObjectPath(path),
                'Includes': dbus.Array([], signature='o'),
            }
            # The dummy method puts the GattService1 <interface> before the child <node>s in
            # dbusmock's introspection XML: bluez-async's parser rejects split <interface> lists.
            self.mock('/').AddObject(service_path, SERVICE_IFACE, service_props,
                                     [('_Noop', '', '', '')])
            gatt_added.append((service_path, SERVICE_IFACE, service_props))
            gatt_paths.append(service_path)
            handle += 1
            for characteristic in service.get('characteristics', []):
                char_path = f'{service_path}/char{handle:04x}'
                uuid = str(characteristic['uuid']).lower()
                char_props = {
                    'UUID': dbus.String(uuid),
                    'Service': dbus.ObjectPath(service_path),
                    'Value': dbus.Array(parse_hex(characteristic.get('value', '')), signature='y'),
                    'Notifying': dbus.Boolean(False),
                    'Flags': dbus.Array([str(f) for f in characteristic.get('flags', [])],
                                        signature='s'),
                    'MTU': dbus.UInt16(23),
                }
                self.mock('/').AddObject(char_path, CHAR_IFACE, char_props, [
                    ('ReadValue', 'a{sv}', 'ay', READ_VALUE),
                    ('WriteValue', 'aya{sv}', '', WRITE_VALUE),
                    ('StartNotify', '', '', START_NOTIFY),
                    ('StopNotify', '', '', STOP_NOTIFY),
                ])
                gatt_added.append((char_path, CHAR_IFACE, char_props))
                chars[uuid] = char_path
                gatt_paths.append(char_path)
                handle += 2
            handle = (handle + 0x10) & ~0x0f

        # The bluez5 template's AddDevice properties, with what the advertisement tells: name,
        # signal strength, services.
        device_props = {
            'Address': dbus.String(address),
            'AddressType': dbus.String('public'),
            'Name': dbus.String(name),
            'Alias': dbus.String(name),
            'Icon': dbus.String(''),
            'Class': dbus.UInt32(0),
            'Appearance': dbus.UInt16(0),
            'UUIDs': dbus.Array([str(u).lower() for u in advertised], signature='s'),
            'Paired': dbus.Boolean(False),
            'Connected': dbus.Boolean(False),
            'Trusted': dbus.Boolean(False),
            'Blocked': dbus.Boolean(False),
            'WakeAllowed': dbus.Boolean(False),
            'Adapter': dbus.ObjectPath(adapter_path),
            'LegacyPairing': dbus.Boolean(False),
            'Modalias': dbus.String(''),
            'RSSI': dbus.Int16(int(command.get('rssi', -60))),
            'TxPower': dbus.Int16(0),
            'ManufacturerData': dbus.Dictionary({}, signature='qv'),
            'ServiceData': dbus.Dictionary({}, signature='sv'),
            'ServicesResolved': dbus.Boolean(False),
            'AdvertisingFlags': dbus.Array([], signature='y'),
            'AdvertisingData': dbus.Dictionary({}, signature='yv'),
        }
        self.mock('/').AddObject(path, DEVICE_IFACE, device_props, [
            ('CancelPairing', '', '', ''),
            ('Connect', '', '', CONNECT),
            ('ConnectProfile', 's', '', ''),
            ('Disconnect', '', '', DISCONNECT),
            ('DisconnectProfile', 's', '', ''),
            ('Pair', '', '', ''),
            # For the controller's "disconnect": the peripheral, not the client, ends the link.
            ('_DropLink', '', '', DROP_LINK),
        ])
        self.interfaces_added(path, DEVICE_IFACE, device_props)
        for added in gatt_added:
            self.interfaces_added(*added)
        self.devices[address] = {'path': path, 'chars': chars, 'gatt': gatt_paths}
        return {'path': path}

    def exists(self, path):
        managed = dbus.Interface(self.obj('/'), OBJECT_MANAGER_IFACE).GetManagedObjects()
        return dbus.ObjectPath(path) in managed

    def cmd_remove_device(self, command):
        entry = self.device_entry(command)
        adapter = entry['path'].rsplit('/', 1)[0]
        # Characteristics, then services, then the device, as BlueZ removes them.
        for path in reversed(entry['gatt']):
            self.mock('/').RemoveObject(path)
        dbus.Interface(self.obj(adapter), 'org.bluez.Adapter1').RemoveDevice(
            dbus.ObjectPath(entry['path']))
        del self.devices[str(command['address']).upper()]
        return {}

    def cmd_notify(self, command):
        entry = self.device_entry(command)
        path = self.char_path(command)
        connected = self.get(entry['path'], DEVICE_IFACE, 'Connected')
        notifying = self.get(path, CHAR_IFACE, 'Notifying')
        if not connected or not notifying:
            raise CommandError(
                f'{command["characteristic"]} of {command["address"]} cannot notify: '
                f'connected={bool(connected)}, notifying={bool(notifying)} (nobody subscribed)')
        self.mock(path).UpdateProperties(CHAR_IFACE, {
            'Value': dbus.Array(parse_hex(command.get('value', '')), signature='y'),
        })
        return {}

    def cmd_disconnect(self, command):
        entry = self.device_entry(command)
        if not self.get(entry['path'], DEVICE_IFACE, 'Connected'):
            raise CommandError(f'{command["address"]} is not connected')
        dbus.Interface(self.obj(entry['path']), DEVICE_IFACE)._DropLink()
        return {}

    def cmd_refuse_connect(self, command):
        entry = self.device_entry(command)
        code = REFUSE_CONNECT if command.get('refuse', True) else CONNECT
        self.mock(entry['path']).AddMethod(DEVICE_IFACE, 'Connect', '', '', code)
        return {}

    def cmd_writes(self, command):
        path = self.char_path(command)
        calls = self.mock(path).GetMethodCalls('WriteValue')
        writes = []
        types = []
        for _timestamp, args in calls:
            writes.append(' '.join(f'{int(b):02x}' for b in args[0]))
            options = args[1] if len(args) > 1 else {}
            types.append(str(options['type']) if 'type' in options else None)
        return {'writes': writes, 'types': types}

    def cmd_connected(self, command):
        entry = self.device_entry(command)
        return {'connected': bool(self.get(entry['path'], DEVICE_IFACE, 'Connected'))}

    def cmd_discovering(self, command):
        path = '/org/bluez/' + command.get('adapter', 'hci0')
        return {'discovering': bool(self.get(path, 'org.bluez.Adapter1', 'Discovering'))}

    def get(self, path, interface, name):
        return dbus.Interface(self.obj(path), dbus.PROPERTIES_IFACE).Get(interface, name)

    def handle(self, command):
        name = command.get('cmd')
        method = getattr(self, f'cmd_{name}', None)
        if not isinstance(name, str) or method is None:
            raise CommandError(f'unknown command {name!r}')
        return method(command)


def parse_hex(text):
    return [dbus.Byte(b) for b in bytes.fromhex(str(text))]


def answer(reply):
    sys.stdout.write(json.dumps(reply) + '\n')
    sys.stdout.flush()


def main():
    try:
        bus = dbus.SystemBus()
    except dbus.exceptions.DBusException as e:
        answer({'ok': False, 'error': f'cannot connect to the system bus: {e}'})
        return 1
    deadline = time.monotonic() + 30
    while not bus.name_has_owner(BUS_NAME):
        if time.monotonic() > deadline:
            answer({'ok': False, 'error': 'org.bluez did not appear on the bus within 30 s'})
            return 1
        time.sleep(0.05)
    controller = Controller(bus)
    answer({'ok': True, 'ready': True})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = controller.handle(json.loads(line))
            reply['ok'] = True
        except Exception as e:  # pylint: disable=broad-except
            reply = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        answer(reply)
    return 0


if __name__ == '__main__':
    sys.exit(main())
