namespace Router.Fuzz;

/// <summary>
/// Entry point. <c>Router.Fuzz request|response|chunked</c> runs one target under AFL++ (SharpFuzz persistent mode);
/// <c>Router.Fuzz TARGET --file PATH</c> replays one input (to reproduce a crash outside AFL).
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 0 || !Targets.TryGet(args[0], out var target))
        {
            Console.Error.WriteLine("usage: Router.Fuzz request|response|chunked [--file PATH]");
            return 2;
        }

        if (args.Length == 3 && args[1] == "--file")
        {
            target(File.ReadAllBytes(args[2]));
            Console.WriteLine("no crash");
            return 0;
        }

        SharpFuzz.Fuzzer.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            target(buffer.ToArray());
        });
        return 0;
    }
}
