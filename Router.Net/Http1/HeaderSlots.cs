using Router.Net.Transport;

namespace Router.Net.Http1;

/// <summary>
/// A request head's header slots: 16 from an <see cref="ArrayShelf{T}"/> (every request with headers rents them),
/// more (a head with over 16 fields) from ArrayPool.Shared. <see cref="Return"/> sends each array back by its length.
/// </summary>
internal static class HeaderSlots
{
    public const int Initial = 16;

    private static readonly ArrayShelf<HeaderField> Shelf = new(Initial);

    public static HeaderField[] Rent(int minimumLength) => Shelf.Rent(minimumLength);

    public static void Return(HeaderField[] array) => Shelf.ReturnAny(array);
}
