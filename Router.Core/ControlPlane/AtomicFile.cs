namespace Router.Core.ControlPlane;

/// <summary>Crash-safe file replacement: readers see the old file or the new one, never a torn one.</summary>
internal static class AtomicFile
{
    /// <summary>Writes to a temp file in the same directory, flushes it to disk, then renames it over <paramref name="path"/>.</summary>
    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        var temp = path + "." + Environment.ProcessId + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
